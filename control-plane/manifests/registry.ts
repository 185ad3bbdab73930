import { trustingFetch, type HttpsTrust } from '../../common/tls-trust.js';
import { z } from 'zod';
import { MANIFEST_ACCEPT } from '../../common/oci.js';
import { sha256Digest } from '../../common/digest.js';
import type { Logger } from '../../common/log.js';
import { parseImageRef, proxyRepository, type ImageRef, type Upstream } from '../../manifests/image-ref.js';
import type { PullAccess } from '../../protocol/tokens.js';

const upstreamsResponse = z.object({ upstreams: z.array(z.object({ alias: z.string(), host: z.string(), url: z.string().optional() })) });

export type Resolution = { ok: true; digest: string } | { ok: false; reason: 'not-found' | 'unreachable' | 'refused'; message: string };

/**
 * How the control plane sees images: through the registry proxy when one is configured (the same
 * path devices download by), else straight at the image's registry (loopback over http, anonymous).
 */
export class ImageRegistry {
  private cached: { at: number; upstreams: Upstream[] } | null = null;

  constructor(
    readonly proxyUrl: string | null,
    private readonly mint: (access: PullAccess) => Promise<string>,
    private readonly log: Logger,
    private readonly cacheMs = 30_000,
    /** The fleet's CA when the proxy is https: (`--ca-file`); also for the campaigns' delta requests. */
    readonly proxyTrust?: HttpsTrust,
  ) {
    this.fetchImpl = trustingFetch(proxyTrust);
  }

  private readonly fetchImpl: typeof fetch;

  async upstreams(): Promise<Upstream[]> {
    if (!this.proxyUrl) return [];
    if (this.cached && Date.now() - this.cached.at < this.cacheMs) return this.cached.upstreams;
    const res = await this.fetchImpl(`${this.proxyUrl}/berth/v1/upstreams`, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`registry proxy ${this.proxyUrl}: GET /berth/v1/upstreams answered ${res.status}`);
    const body = upstreamsResponse.parse(await res.json());
    const upstreams = body.upstreams.map((u) => ({ alias: u.alias, url: u.url ?? `http://${u.host}` }));
    this.cached = { at: Date.now(), upstreams };
    return upstreams;
  }

  /** The repository name a reference has on the proxy (`ALIAS/REPO`), or on its own registry without one. */
  async repositoryName(ref: string | ImageRef): Promise<string> {
    const r = typeof ref === 'string' ? parseImageRef(ref) : ref;
    if (!this.proxyUrl) return `${r.registry}/${r.repository}`;
    return proxyRepository(r, await this.upstreams()).repository;
  }

  /** Resolves a tag (or checks a digest) to the manifest digest the registry serves for it. */
  async resolve(reference: string): Promise<Resolution> {
    let ref: ImageRef;
    try {
      ref = parseImageRef(reference);
    } catch (err) {
      return { ok: false, reason: 'refused', message: (err as Error).message };
    }
    const target = ref.digest ?? ref.tag ?? 'latest';
    let url: string;
    const headers: Record<string, string> = { Accept: MANIFEST_ACCEPT };
    try {
      if (this.proxyUrl) {
        const name = await this.repositoryName(ref);
        url = `${this.proxyUrl}/v2/${name}/manifests/${target}`;
        headers.Authorization = `Bearer ${await this.mint([{ type: 'repository', name, actions: ['pull'] }])}`;
      } else {
        const host = ref.registry;
        const scheme = /^(127\.|localhost(:|$)|\[::1\])/.test(host) ? 'http' : 'https';
        url = `${scheme}://${host}/v2/${ref.repository}/manifests/${target}`;
      }
    } catch (err) {
      return { ok: false, reason: 'refused', message: (err as Error).message };
    }
    try {
      let res = await this.fetchImpl(url, { method: 'HEAD', headers, signal: AbortSignal.timeout(30_000) });
      let digest = res.headers.get('docker-content-digest');
      if (res.ok && !digest) {
        // Some registries omit the header on HEAD: the digest of the bytes is the answer.
        res = await this.fetchImpl(url, { headers, signal: AbortSignal.timeout(30_000) });
        if (res.ok) digest = sha256Digest(new Uint8Array(await res.arrayBuffer()));
      }
      if (res.status === 404) return { ok: false, reason: 'not-found', message: `${reference}: no such image (manifest unknown)` };
      if (!res.ok || !digest) return { ok: false, reason: res.status === 401 || res.status === 403 ? 'refused' : 'unreachable', message: `${reference}: registry answered ${res.status}` };
      if (ref.digest && digest !== ref.digest) return { ok: false, reason: 'refused', message: `${reference}: registry serves ${digest} for it` };
      return { ok: true, digest };
    } catch (err) {
      this.log.warn({ err, reference }, 'image resolution failed');
      return { ok: false, reason: 'unreachable', message: `${reference}: ${(err as Error).message}` };
    }
  }
}
