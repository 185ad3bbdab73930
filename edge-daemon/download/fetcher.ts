import { mkdir } from 'node:fs/promises';
import type Dockerode from 'dockerode';
import type { Logger } from '../../common/log.js';
import { newOpId } from '../../common/log.js';
import { MEDIA, parseManifestBytes, pickPlatform } from '../../common/oci.js';
import { parseImageRef, proxyRepository } from '../../manifests/image-ref.js';
import { ImageUnavailableError, namingImage } from './errors.js';
import { engineImage, engineLayerChains, engineRepoDigests, engineTags, pullImage, removeReference, tagImage } from './engine.js';
import { checkDiskSpace } from './disk.js';
import type { FetcherOptions, ImageFetcher } from '../images.js';
import type { HandoverRegistry } from './local-registry.js';
import { decideLayers, deviceComponent, layersToFetch, localTag, tagsToRemove, type LayerDecision } from './plan.js';
import { GcPacer, minorGc } from './gc-pacer.js';
import { ProgressTracker, type DownloadProgress } from './progress.js';
import { ProxyClient, type BlobTarget } from './proxy-client.js';
import { DownloadStore } from './store.js';

// The contract lives with its caller (edge-daemon/images.ts); this side implements it and adds tunables.
export type { ImageFetcher };

export interface ImageFetcherOptions extends FetcherOptions {
  /** A request receiving nothing for this long is cut and resumed (default 30 s). */
  idleTimeoutMs?: number;
  /** Attempts per blob for transient failures (default 8), backoff base and cap. */
  attempts?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
}

/** The content-addressed, immutable part of an image: resolved once per fetcher, kept in memory. */
interface ImageContent {
  ref: string;
  repository: string;
  proxyRepository: string;
  manifestDigest: string;
  /** The pinned manifest and, for an index, the picked platform's manifest. */
  manifests: { digest: string; bytes: Buffer; mediaType: string }[];
  configDigest: string;
  configBytes: Buffer;
  layers: { digest: string; size: number }[];
  diffIds: string[];
}

interface ImagePlan {
  content: ImageContent;
  /** The engine already has this image (id = config digest): only a tag is missing, at most. */
  inEngine: boolean;
  layers: LayerDecision[];
}

function inferMediaType(bytes: Buffer): string {
  const parsed = parseManifestBytes(bytes);
  return parsed.mediaType || (parsed.kind === 'index' ? MEDIA.ociIndex : MEDIA.ociManifest);
}

function diffIdsOf(config: Buffer, image: string): string[] {
  let json: { rootfs?: { diff_ids?: unknown } };
  try {
    json = JSON.parse(config.toString('utf8'));
  } catch {
    throw new Error(`image ${image}: config is not JSON`);
  }
  const ids = json.rootfs?.diff_ids;
  if (!Array.isArray(ids) || !ids.every((d) => typeof d === 'string')) throw new Error(`image ${image}: config has no rootfs.diff_ids list`);
  return ids as string[];
}

export function createImageFetcher(opts: ImageFetcherOptions): ImageFetcher {
  const log = opts.log;
  const store = new DownloadStore(opts.stateDir);
  const device = deviceComponent(opts.deviceId);
  // One counter for every stream this fetcher moves (downloads and the handover to the engine).
  const pacer = new GcPacer(minorGc());
  const client = new ProxyClient({
    pacer,
    baseUrl: opts.registryProxy,
    pullToken: opts.pullToken,
    log,
    idleTimeoutMs: opts.idleTimeoutMs ?? 30_000,
    attempts: opts.attempts ?? 8,
    // Half of each delay is random: many gateways cut by one proxy restart do not come back together.
    backoff: { baseMs: opts.backoffBaseMs ?? 500, capMs: opts.backoffCapMs ?? 30_000, jitter: 0.5 },
  });
  const concurrency = Math.max(1, opts.concurrency ?? 3);
  const marginBytes = opts.diskMarginBytes ?? 256 * 1024 * 1024;
  const contents = new Map<string, ImageContent>();
  const inflight = new Map<string, Promise<void>>();
  /** Blobs the handover registry may fetch on the engine's demand (layers of images being handed over). */
  const handoverBlobs = new Map<string, BlobTarget>();
  let registry: Promise<HandoverRegistry> | undefined;

  async function manifestBytes(proxyRepo: string, digest: string, image: string, signal?: AbortSignal): Promise<{ bytes: Buffer; mediaType: string }> {
    const stored = await store.read(digest);
    if (stored) return { bytes: stored, mediaType: inferMediaType(stored) };
    const got = await client.manifest(proxyRepo, digest, image, signal);
    const parsed = parseManifestBytes(got.bytes, got.mediaType);
    return { bytes: got.bytes, mediaType: parsed.mediaType };
  }

  /** Manifest(s) and config of a pinned ref, verified, into memory only (nothing written yet). */
  async function resolve(ref: string, signal?: AbortSignal): Promise<ImageContent> {
    const cached = contents.get(ref);
    if (cached) return cached;
    try {
      const content = await resolveUncached(ref, signal);
      contents.set(ref, content);
      return content;
    } catch (err) {
      throw signal?.aborted ? err : namingImage(ref, err);
    }
  }

  async function resolveUncached(ref: string, signal?: AbortSignal): Promise<ImageContent> {
    const parsed = parseImageRef(ref);
    if (!parsed.digest) throw new Error(`image ${ref} is not pinned by digest`);
    const proxyRepo = proxyRepository(parsed, await client.upstreams(signal)).repository;
    const manifests: ImageContent['manifests'] = [];
    let digest = parsed.digest;
    let m = await manifestBytes(proxyRepo, digest, ref, signal);
    manifests.push({ digest, ...m });
    let desc = parseManifestBytes(m.bytes, m.mediaType);
    if (desc.kind === 'index') {
      const picked = pickPlatform(desc.manifests);
      if (!picked) throw new ImageUnavailableError(ref, 'its index lists no manifest');
      digest = picked.digest;
      m = await manifestBytes(proxyRepo, digest, ref, signal);
      manifests.push({ digest, ...m });
      desc = parseManifestBytes(m.bytes, m.mediaType);
      if (desc.kind !== 'image') throw new Error(`image ${ref}: index entry ${digest} is itself an index`);
    }
    const configDigest = desc.config.digest;
    const configBytes = (await store.read(configDigest)) ?? (await client.smallBlob(proxyRepo, configDigest, ref, signal));
    const content: ImageContent = {
      ref,
      repository: parsed.repository,
      proxyRepository: proxyRepo,
      manifestDigest: parsed.digest,
      manifests,
      configDigest,
      configBytes,
      layers: desc.layers.map((l) => ({ digest: l.digest, size: l.size })),
      diffIds: diffIdsOf(configBytes, ref),
    };
    return content;
  }

  async function plan(images: string[], signal?: AbortSignal): Promise<ImagePlan[]> {
    const resolved = await Promise.all(images.map((ref) => resolve(ref, signal)));
    const engine = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
      try {
        return await f();
      } catch (err) {
        throw new Error(`Docker engine failed while ${what} for images ${images.join(', ')}: ${(err as Error).message}`, { cause: err });
      }
    };
    const chains = await engine('listing its layers', () => engineLayerChains(opts.docker));
    const plans: ImagePlan[] = [];
    for (const content of resolved) {
      const inEngine = (await engine('looking up an image', () => engineImage(opts.docker, content.configDigest))) !== undefined;
      const stored = new Set<string>();
      for (const l of content.layers) if (await store.has(l.digest)) stored.add(l.digest);
      plans.push({ content, inEngine, layers: decideLayers(content.layers, content.diffIds, chains, (d) => stored.has(d)) });
    }
    return plans;
  }

  /** Each missing blob once, attributed to the first image that needs it. */
  function blobsToFetch(plans: ImagePlan[]): BlobTarget[] {
    const seen = new Map<string, BlobTarget>();
    for (const p of plans) {
      if (p.inEngine) continue;
      for (const l of layersToFetch(p.layers)) {
        if (!seen.has(l.digest)) seen.set(l.digest, { repository: p.content.proxyRepository, digest: l.digest, size: l.size, image: p.content.ref });
      }
    }
    return [...seen.values()];
  }

  async function stillMissing(targets: BlobTarget[]): Promise<number> {
    let sum = 0;
    for (const t of targets) sum += Math.max(0, t.size - (await store.partialSize(t.digest)));
    return sum;
  }

  function download(target: BlobTarget, onBytes: (n: number) => void, signal?: AbortSignal): Promise<void> {
    const running = inflight.get(target.digest);
    if (running) return running;
    const p = client.downloadBlob(store, target, onBytes, signal).finally(() => inflight.delete(target.digest));
    inflight.set(target.digest, p);
    return p;
  }

  async function downloadAll(targets: BlobTarget[], progress: ProgressTracker, signal?: AbortSignal): Promise<void> {
    // The first failure stops the other downloads; their partial files stay for the next attempt.
    const stop = new AbortController();
    const combined = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
    const queue = [...targets];
    let failure: unknown;
    const worker = async (): Promise<void> => {
      for (let t = queue.shift(); t && failure === undefined; t = queue.shift()) {
        const target = t;
        try {
          await download(target, (n) => progress.set(target.digest, n), combined);
        } catch (err) {
          if (failure === undefined) failure = signal?.aborted ? err : namingImage(target.image, err);
          stop.abort(err);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, targets.length) }, worker));
    if (failure !== undefined) throw failure;
  }

  function handover(): Promise<HandoverRegistry> {
    // Loaded on the first handover: Hono and its node server stay out of a daemon whose images the
    // engine already has (most releases change a few services; idle memory matters on a gateway).
    registry ??= import('./local-registry.js').then(({ startHandoverRegistry }) => startHandoverRegistry(
      {
        manifest: async (digest) => {
          const bytes = await store.read(digest);
          return bytes ? { bytes, mediaType: inferMediaType(bytes) } : undefined;
        },
        blob: async (digest) => {
          let size = await store.size(digest);
          if (size === undefined) {
            // The engine asks for a layer we skipped because it had the same diff_id: it only
            // recognises a layer by the blob digest it once pulled it under, and this one came in
            // under another (built locally, other compression). Fetch it now, verified, rather than
            // fail the pull.
            const target = handoverBlobs.get(digest);
            if (!target) return undefined;
            log.info({ image: target.image, digest }, 'engine needs a layer it already has under another digest; fetching it for the handover');
            await download(target, () => {});
            size = await store.size(digest);
          }
          return size === undefined ? undefined : { path: store.blobPath(digest), size };
        },
      },
      log,
      pacer,
    ));
    // A failed start (no loopback port?) is retried on the next handover, not cached.
    registry.catch(() => {
      registry = undefined;
    });
    return registry;
  }

  /**
   * Hands one verified image to the engine. Layers the engine already has are not in our store:
   * Docker pulls by manifest, checks each layer's blob digest against the layers it has pulled
   * before (its blob digest → diff_id records) and answers "Already exists" without asking us;
   * only when it cannot match a layer does it GET the blob, and then the handover fetches it.
   */
  async function handOver(p: ImagePlan, host: string): Promise<string> {
    const c = p.content;
    const tag = localTag(opts.deviceId, c.repository, c.manifestDigest);
    if (!p.inEngine) {
      for (const l of c.layers) handoverBlobs.set(l.digest, { repository: c.proxyRepository, digest: l.digest, size: l.size, image: c.ref });
      const pullRef = `${host}/${device}/${c.repository}@${c.manifestDigest}`;
      try {
        await pullImage(opts.docker, pullRef, c.ref, log);
      } finally {
        for (const l of c.layers) handoverBlobs.delete(l.digest);
      }
      const got = await engineImage(opts.docker, c.configDigest);
      if (!got) throw new Error(`image ${c.ref}: engine finished the pull but has no image ${c.configDigest}`);
      await tagImage(opts.docker, c.configDigest, tag.repo, tag.tag);
      // The loopback reference is meaningless once the registry's port is gone; the tag holds the image.
      await removeReference(opts.docker, pullRef, log);
    } else {
      await tagImage(opts.docker, c.configDigest, tag.repo, tag.tag);
    }
    return c.configDigest;
  }

  return {
    async missingBytes(images) {
      await store.init();
      return stillMissing(blobsToFetch(await plan(images)));
    },

    async ensureImages(images, { onProgress, signal } = {}) {
      const op = newOpId();
      await mkdir(opts.stateDir, { recursive: true });
      const plans = await plan(images, signal);
      const targets = blobsToFetch(plans);
      const missing = await stillMissing(targets);
      log.info({ op, images: images.length, blobs: targets.length, missingBytes: missing }, 'download plan');
      // Nothing to download, nothing to check: a re-tag or an engine that has it all fits anywhere.
      if (targets.length > 0) await checkDiskSpace({ stateDir: opts.stateDir, missingBytes: missing, marginBytes, docker: opts.docker, log });

      await store.init();
      for (const p of plans) {
        for (const m of p.content.manifests) await store.write(m.digest, m.bytes);
        await store.write(p.content.configDigest, p.content.configBytes);
      }
      const progress = new ProgressTracker(onProgress);
      for (const p of plans) progress.addImage(p.content.ref);
      for (const t of targets) progress.addBlob(t.image, t.digest, t.size);
      for (const t of targets) progress.set(t.digest, await store.partialSize(t.digest));
      progress.flush();
      await downloadAll(targets, progress, signal);
      progress.flush();

      const host = (await handover()).host;
      const result: Record<string, { imageId: string }> = {};
      for (const p of plans) {
        signal?.throwIfAborted();
        try {
          result[p.content.ref] = { imageId: await handOver(p, host) };
        } catch (err) {
          throw namingImage(p.content.ref, err);
        }
      }
      log.info({ op, images: Object.keys(result).length }, 'images present in the engine');
      return result;
    },

    async prune(keep) {
      await store.init();
      const referenced = new Set<string>();
      const keepTags: string[] = [];
      const visit = async (digest: string): Promise<void> => {
        referenced.add(digest);
        const bytes = await store.read(digest);
        if (!bytes) return;
        const m = parseManifestBytes(bytes);
        if (m.kind === 'index') {
          for (const child of m.manifests) await visit(child.digest);
        } else {
          referenced.add(m.config.digest);
          for (const l of m.layers) referenced.add(l.digest);
        }
      };
      for (const ref of keep) {
        const r = parseImageRef(ref);
        if (!r.digest) throw new Error(`prune: image ${ref} is not pinned by digest`);
        await visit(r.digest);
        keepTags.push(localTag(opts.deviceId, r.repository, r.digest).ref);
      }
      let removed = 0;
      for (const d of await store.list()) {
        if (!referenced.has(d)) {
          await store.remove(d);
          removed++;
        }
      }
      for (const d of await store.listPartials()) if (!referenced.has(d)) await store.discardPartial(d);
      for (const c of [...contents.keys()]) if (!keep.includes(c)) contents.delete(c);
      const untag = tagsToRemove(await engineTags(opts.docker), opts.deviceId, keepTags);
      // Handover references left by a crash between pull and untag.
      const loopback = new RegExp(`^127\\.0\\.0\\.1:\\d+/${device}/`);
      const stale = (await engineRepoDigests(opts.docker)).filter((r) => loopback.test(r));
      for (const ref of [...untag, ...stale]) await removeReference(opts.docker, ref, log);
      log.info({ blobsRemoved: removed, tagsRemoved: untag.length }, 'pruned');
    },

    async close() {
      const r = registry;
      registry = undefined;
      if (r) await (await r).close();
    },
  };
}
