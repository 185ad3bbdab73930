import { sha256Digest } from '../common/digest.js';
import type { Logger } from '../common/log.js';
import { MANIFEST_ACCEPT, parseManifestBytes, type ParsedManifest } from '../common/oci.js';
import { upstreamRepository } from './config.js';
import { OciError } from './errors.js';
import type { ProxyMetrics } from './metrics.js';
import { splitAlias } from './names.js';
import type { ProxyCache } from './cache.js';
import type { HttpAnswer } from '../common/http-client.js';
import { UpstreamUnreachable, type UpstreamClient } from './upstream.js';

export interface ResolvedManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
  /** True when the upstream was unreachable and a tag fell back to its last known digest. */
  stale: boolean;
}

export interface UpstreamTarget {
  client: UpstreamClient;
  /** The repository on the upstream (Docker Hub one-part names get `library/`). */
  repository: string;
}

const MAX_MANIFEST_BYTES = 4 << 20;
/** A manifest is small: one that takes longer than this, headers and body, is a stalled upstream. */
const MANIFEST_TIMEOUT_MS = 60_000;

/** Maps `ALIAS/REPO` to its upstream client and upstream repository. */
export function targetOf(upstreams: Map<string, UpstreamClient>, name: string): UpstreamTarget {
  const { alias, repository } = splitAlias(name);
  const client = upstreams.get(alias);
  if (!client) throw new OciError('NAME_UNKNOWN', `repository ${name}: no upstream named ${JSON.stringify(alias)} (known: ${[...upstreams.keys()].join(', ') || 'none'})`);
  return { client, repository: upstreamRepository(client.config, repository) };
}

function mediaTypeOf(contentType: string | undefined, bytes: Buffer): string {
  const header = contentType?.split(';')[0].trim();
  if (header && header !== 'application/json' && header !== 'text/plain') return header;
  try {
    const parsed = parseManifestBytes(bytes);
    return parsed.mediaType;
  } catch {
    return header || 'application/json';
  }
}

/**
 * Manifests through the cache. By digest: immutable, served from disk once verified. By tag:
 * re-resolved after `tagTtlMs`; when the upstream cannot be reached, the last known digest is
 * served and marked stale.
 */
export class ManifestService {
  private readonly pending = new Map<string, Promise<ResolvedManifest>>();

  constructor(
    private readonly cache: ProxyCache,
    private readonly upstreams: Map<string, UpstreamClient>,
    private readonly metrics: ProxyMetrics,
    private readonly log: Logger,
    private readonly tagTtlMs: number,
  ) {}

  get(name: string, reference: string, byDigest: boolean): Promise<ResolvedManifest> {
    const key = `${name}:${reference}`;
    const running = this.pending.get(key);
    if (running) return running;
    const p = (byDigest ? this.byDigest(name, reference) : this.byTag(name, reference)).finally(() => this.pending.delete(key));
    this.pending.set(key, p);
    return p;
  }

  /** The parsed form of a manifest the proxy may serve (for scope checks and warm). */
  async parsed(name: string, digest: string): Promise<ParsedManifest> {
    const m = await this.get(name, digest, true);
    return parseManifestBytes(m.bytes, m.mediaType);
  }

  private async byDigest(name: string, digest: string): Promise<ResolvedManifest> {
    const cached = await this.cache.readManifest(digest);
    if (cached) {
      this.metrics.inc('berth_proxy_cache_hits_total', { kind: 'manifest' });
      return { digest, ...cached, stale: false };
    }
    this.metrics.inc('berth_proxy_cache_misses_total', { kind: 'manifest' });
    const target = targetOf(this.upstreams, name);
    const { bytes, mediaType } = await this.fetchUpstream(target, digest, name);
    const actual = sha256Digest(bytes);
    if (actual !== digest) {
      this.metrics.inc('berth_proxy_digest_mismatches_total', { upstream: target.client.alias, kind: 'manifest' });
      throw new OciError('UPSTREAM_DIGEST_MISMATCH', `upstream ${target.client.alias} sent a manifest for ${digest} that hashes to ${actual}; refused and not cached`);
    }
    await this.cache.writeManifest(digest, bytes, mediaType);
    return { digest, bytes, mediaType, stale: false };
  }

  private async byTag(name: string, tag: string): Promise<ResolvedManifest> {
    const known = await this.cache.readTag(name, tag);
    if (known && Date.now() - known.resolvedAt < this.tagTtlMs) {
      const cached = await this.cache.readManifest(known.digest);
      if (cached) {
        this.metrics.inc('berth_proxy_cache_hits_total', { kind: 'manifest' });
        return { digest: known.digest, ...cached, stale: false };
      }
    }
    this.metrics.inc('berth_proxy_cache_misses_total', { kind: 'manifest' });
    const target = targetOf(this.upstreams, name);
    let fetched: { bytes: Buffer; mediaType: string; headerDigest: string | undefined };
    try {
      fetched = await this.fetchUpstream(target, tag, name);
    } catch (err) {
      const down = err instanceof OciError && (err.code === 'UPSTREAM_UNAVAILABLE' || err.code === 'UPSTREAM_ERROR');
      if (down && known) {
        const cached = await this.cache.readManifest(known.digest);
        if (cached) {
          this.log.warn({ name, tag, digest: known.digest, err: (err as Error).message }, 'upstream down; serving last known digest of tag');
          return { digest: known.digest, ...cached, stale: true };
        }
      }
      throw err;
    }
    const digest = sha256Digest(fetched.bytes);
    if (fetched.headerDigest && fetched.headerDigest !== digest) {
      this.metrics.inc('berth_proxy_digest_mismatches_total', { upstream: target.client.alias, kind: 'manifest' });
      throw new OciError('UPSTREAM_DIGEST_MISMATCH', `upstream ${target.client.alias} says ${name}:${tag} is ${fetched.headerDigest} but its bytes hash to ${digest}; refused`);
    }
    await this.cache.writeManifest(digest, fetched.bytes, fetched.mediaType);
    await this.cache.writeTag(name, tag, { digest, mediaType: fetched.mediaType, resolvedAt: Date.now() });
    return { digest, bytes: fetched.bytes, mediaType: fetched.mediaType, stale: false };
  }

  private async fetchUpstream(target: UpstreamTarget, reference: string, name: string): Promise<{ bytes: Buffer; mediaType: string; headerDigest: string | undefined }> {
    let res: HttpAnswer;
    try {
      res = await target.client.request(`${target.repository}/manifests/${reference}`, {
        headers: { accept: MANIFEST_ACCEPT },
        scope: `repository:${target.repository}:pull`,
        signal: AbortSignal.timeout(MANIFEST_TIMEOUT_MS),
      });
    } catch (err) {
      if (err instanceof UpstreamUnreachable) {
        this.metrics.inc('berth_proxy_upstream_errors_total', { upstream: target.client.alias, reason: 'unreachable' });
        throw new OciError('UPSTREAM_UNAVAILABLE', err.message);
      }
      throw err;
    }
    if (res.status === 404) {
      await res.cancel();
      throw new OciError('MANIFEST_UNKNOWN', `manifest ${name}:${reference} is not on upstream ${target.client.alias}`);
    }
    if (!res.ok) {
      await res.cancel();
      this.metrics.inc('berth_proxy_upstream_errors_total', { upstream: target.client.alias, reason: `status-${res.status}` });
      throw new OciError(res.status >= 500 ? 'UPSTREAM_UNAVAILABLE' : 'UPSTREAM_ERROR', `upstream ${target.client.alias} answered ${res.status} for manifest ${name}:${reference}`);
    }
    const declared = Number(res.header('content-length') ?? '0');
    if (declared > MAX_MANIFEST_BYTES) {
      await res.cancel();
      throw new OciError('UPSTREAM_ERROR', `manifest ${name}:${reference} is ${declared} bytes, over the ${MAX_MANIFEST_BYTES} limit`);
    }
    let bytes: Buffer;
    try {
      bytes = await res.bytes(MAX_MANIFEST_BYTES);
    } catch (err) {
      this.metrics.inc('berth_proxy_upstream_errors_total', { upstream: target.client.alias, reason: 'manifest-body' });
      throw new OciError('UPSTREAM_UNAVAILABLE', `upstream ${target.client.alias} broke off manifest ${name}:${reference}: ${(err as Error).message}`);
    }
    this.metrics.inc('berth_proxy_upstream_bytes_total', { upstream: target.client.alias }, bytes.length);
    return { bytes, mediaType: mediaTypeOf(res.header('content-type'), bytes), headerDigest: res.header('docker-content-digest') };
  }
}
