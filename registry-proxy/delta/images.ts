import { readFile } from 'node:fs/promises';
import type { Logger } from '../../common/log.js';
import { parseManifestBytes, type ParsedManifest } from '../../common/oci.js';
import { OciError } from '../errors.js';
import { selectChildren, type ProxyImage } from '../warm.js';

/** What the delta routes need of the proxy's cache; the server hands its own parts in. */
export interface ProxyParts {
  /** A verified manifest (by digest, or a tag resolved through the cache). */
  manifest(name: string, reference: string, byDigest: boolean): Promise<{ digest: string; bytes: Buffer; mediaType: string }>;
  /**
   * A verified blob on disk, fetched through the cache when missing, kept from eviction until
   * `release()`.
   */
  blob(name: string, digest: string, log: Logger): Promise<{ path: string; release(): void }>;
}

export interface ImageLayer {
  index: number;
  digest: string;
  size: number;
  mediaType: string;
  diffId: string;
}

export interface ResolvedImage {
  /** `ALIAS/REPO` */
  name: string;
  /** `ALIAS/REPO@<image manifest digest>` */
  ref: string;
  manifest: string;
  config: string;
  layers: ImageLayer[];
}

const MAX_CONFIG_BYTES = 4 << 20;
const MEMO_ENTRIES = 500;

function diffIdsOf(bytes: Buffer, what: string): string[] {
  let json: { rootfs?: { diff_ids?: unknown } };
  try {
    json = JSON.parse(bytes.toString('utf8')) as typeof json;
  } catch {
    throw new OciError('MANIFEST_INVALID', `${what}: image config is not JSON`, undefined, 400);
  }
  const ids = json.rootfs?.diff_ids;
  if (!Array.isArray(ids) || ids.some((d) => typeof d !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(d))) {
    throw new OciError('MANIFEST_INVALID', `${what}: image config has no rootfs.diff_ids of sha256 digests`, undefined, 400);
  }
  return ids as string[];
}

/**
 * Images as their layers with diff_ids (from the config). Manifests and configs are immutable,
 * so a resolution is memoized by manifest digest (and platform).
 */
export class ImageResolver {
  private readonly memo = new Map<string, Promise<ResolvedImage>>();

  constructor(private readonly parts: ProxyParts) {}

  async resolve(image: ProxyImage, platform: string | undefined, log: Logger): Promise<ResolvedImage> {
    const top = await this.parts.manifest(image.name, image.reference, image.byDigest);
    const key = `${image.name}@${top.digest}/${platform ?? ''}`;
    let p = this.memo.get(key);
    if (!p) {
      p = this.load(image.name, top.digest, parseManifestBytes(top.bytes, top.mediaType), platform, log);
      p.catch(() => this.memo.delete(key));
      if (this.memo.size >= MEMO_ENTRIES) this.memo.delete(this.memo.keys().next().value as string);
      this.memo.set(key, p);
    }
    return p;
  }

  private async load(name: string, digest: string, parsed: ParsedManifest, platform: string | undefined, log: Logger): Promise<ResolvedImage> {
    let manifest = digest;
    let m = parsed;
    if (m.kind === 'index') {
      const children = selectChildren(m.manifests, platform);
      if (children.length !== 1) {
        throw new OciError('MANIFEST_INVALID', `${name}@${digest} is an index of ${m.manifests.length} images; name one with "platform" (os/arch)`, undefined, 400);
      }
      manifest = children[0].digest;
      const child = await this.parts.manifest(name, manifest, true);
      m = parseManifestBytes(child.bytes, child.mediaType);
      if (m.kind !== 'image') throw new OciError('MANIFEST_INVALID', `${name}@${manifest}: an index inside an index`, undefined, 400);
    }
    const what = `${name}@${manifest}`;
    if (m.config.size > MAX_CONFIG_BYTES) throw new OciError('MANIFEST_INVALID', `${what}: config of ${m.config.size} bytes`, undefined, 400);
    const blob = await this.parts.blob(name, m.config.digest, log);
    let diffIds: string[];
    try {
      diffIds = diffIdsOf(await readFile(blob.path), what);
    } finally {
      blob.release();
    }
    if (diffIds.length !== m.layers.length) {
      throw new OciError('MANIFEST_INVALID', `${what}: ${m.layers.length} layers but ${diffIds.length} diff_ids in its config`, undefined, 400);
    }
    const layers = m.layers.map((l, index) => ({ index, digest: l.digest, size: l.size, mediaType: l.mediaType, diffId: diffIds[index] }));
    return { name, ref: `${name}@${manifest}`, manifest, config: m.config.digest, layers };
  }
}

/**
 * `ProxyParts.blob` over the proxy's cache: pin first (so eviction cannot take the blob between
 * its fetch and its use), then fetch it through the upstream when it is not cached.
 */
export function pinnedBlobs(
  cache: { lookup(digest: string): number | undefined; pin(digest: string): () => void; blobPath(digest: string): string },
  fetch: (name: string, digest: string, log: Logger) => Promise<void>,
): ProxyParts['blob'] {
  return async (name, digest, log) => {
    const release = cache.pin(digest);
    try {
      if (cache.lookup(digest) === undefined) await fetch(name, digest, log);
    } catch (err) {
      release();
      throw err;
    }
    return { path: cache.blobPath(digest), release };
  };
}
