import { mkdir } from 'node:fs/promises';
import type { EngineClient } from '../engine/client.js';
import type { Logger } from '../gateway-log.js';
import { newOpId } from '../../common/log-fields.js';
import { MEDIA, parseManifestBytes, pickPlatform } from '../../common/oci.js';
import { parseImageRef, proxyRepository } from '../../manifests/image-ref.js';
import { ImageUnavailableError, namingImage } from './errors.js';
import { engineImage, engineLayerChains, engineRepoDigests, engineTags, pullImage, removeReference, tagImage } from './engine.js';
import { checkDiskSpace } from './disk.js';
import { pruneStore } from './prune.js';
import type { DeltaOutcome, FetcherOptions, FetchProgress, ImageFetcher } from '../images.js';
import { allFull, DeltaRebuilder, deltaImageOf, outcomes, wantedLayers, type DeltaImage } from './delta.js';
import { rebuiltManifest } from './delta-plan.js';
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
  /** Ask the proxy for layer deltas from the images the gateway runs (default true). */
  deltas?: boolean;
  /** How long to wait for the proxy to compute deltas before taking layers in full (default 2 min). */
  deltaPlanWaitMs?: number;
}

/** The content-addressed, immutable part of an image: resolved once per fetcher, kept in memory. */
interface ImageContent {
  ref: string;
  repository: string;
  proxyRepository: string;
  manifestDigest: string;
  /** The pinned manifest and, for an index, the picked platform's manifest. */
  manifests: { digest: string; bytes: Buffer; mediaType: string }[];
  /** os/arch[/variant] of the entry picked from an index; undefined for a plain image manifest. */
  platform?: string;
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
    trust: opts.trust,
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
  const deltas = new DeltaRebuilder({ store, client, docker: opts.docker, log, registryProxy: opts.registryProxy, trust: opts.trust, pullToken: opts.pullToken, planWaitMs: opts.deltaPlanWaitMs ?? 120_000, pacer });

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
    let platform: string | undefined;
    let m = await manifestBytes(proxyRepo, digest, ref, signal);
    manifests.push({ digest, ...m });
    let desc = parseManifestBytes(m.bytes, m.mediaType);
    if (desc.kind === 'index') {
      const picked = pickPlatform(desc.manifests);
      if (!picked) throw new ImageUnavailableError(ref, 'its index lists no manifest');
      digest = picked.digest;
      const p = picked.platform;
      if (p?.architecture) platform = [p.os ?? 'linux', p.architecture, p.variant].filter(Boolean).join('/');
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
      platform,
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
    const inEngine: boolean[] = [];
    for (const content of resolved) inEngine.push((await engine('looking up an image', () => engineImage(opts.docker, content.configDigest))) !== undefined);
    // The engine's layer chains cost a call per image it holds (every daemon of a wave at once on a
    // shared engine): only an image it lacks needs them. An image it has is its own whole chain.
    const chains = inEngine.every(Boolean) ? [] : await engine('listing its layers', () => engineLayerChains(opts.docker));
    const plans: ImagePlan[] = [];
    for (const [i, content] of resolved.entries()) {
      const stored = new Set<string>();
      for (const l of content.layers) if (await store.has(l.digest)) stored.add(l.digest);
      const own = inEngine[i] ? [content.diffIds] : chains;
      plans.push({ content, inEngine: inEngine[i], layers: decideLayers(content.layers, content.diffIds, own, (d) => stored.has(d)) });
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
  async function handOver(p: ImagePlan, host: string, rebuilt: Map<string, { diffId: string; size: number }>): Promise<string> {
    const c = p.content;
    const tag = localTag(opts.deviceId, c.repository, c.manifestDigest);
    if (!p.inEngine) {
      for (const l of c.layers) handoverBlobs.set(l.digest, { repository: c.proxyRepository, digest: l.digest, size: l.size, image: c.ref });
      // Layers rebuilt from deltas go to the engine as uncompressed tars: the same config, so the same image id.
      let pulled = c.manifestDigest;
      if (c.layers.some((l) => rebuilt.has(l.digest))) {
        const m = rebuiltManifest(c.manifests[c.manifests.length - 1].bytes, rebuilt);
        await store.write(m.digest, m.bytes);
        pulled = m.digest;
      }
      const pullRef = `${host}/${device}/${c.repository}@${pulled}`;
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

  /** The images the gateway runs, resolved (from the store, mostly): the bases a delta may start from. */
  async function held(have: string[], images: string[], signal?: AbortSignal): Promise<DeltaImage[]> {
    const out: DeltaImage[] = [];
    for (const ref of have.filter((h) => !images.includes(h))) {
      try {
        out.push(deltaImageOf(await resolve(ref, signal)));
      } catch (err) {
        log.info({ image: ref, err: (err as Error).message }, 'a running image cannot serve as a delta base');
      }
    }
    return out;
  }

  return {
    async missingBytes(images) {
      await store.init();
      return stillMissing(blobsToFetch(await plan(images)));
    },

    async ensureImages(images, { onProgress, signal, have = [] } = {}) {
      const op = newOpId();
      await mkdir(opts.stateDir, { recursive: true });
      const plans = await plan(images, signal);
      const wanted = blobsToFetch(plans);
      const bases = opts.deltas === false || wanted.length === 0 ? [] : await held(have, images, signal);
      const routes = bases.length === 0 ? allFull(wanted) : await deltas.route(wantedLayers(plans.filter((p) => !p.inEngine).map((p) => p.content), wanted), bases, signal);
      const targets = routes.full.map((f) => f.target);
      const missing = await stillMissing(targets);
      log.info({ op, images: images.length, blobs: targets.length, deltas: routes.jobs.length, missingBytes: missing, deltaDisk: routes.disk }, 'download plan');
      // Nothing to download, nothing to check: a re-tag or an engine that has it all fits anywhere.
      if (wanted.length > 0) {
        await checkDiskSpace({ stateDir: opts.stateDir, missingBytes: missing + routes.disk.state, engineBytes: missing + routes.disk.engine, marginBytes, docker: opts.docker, log });
      }

      await store.init();
      for (const p of plans) {
        for (const m of p.content.manifests) await store.write(m.digest, m.bytes);
        await store.write(p.content.configDigest, p.content.configBytes);
      }
      const full = wanted.reduce((n, t) => n + t.size, 0);
      // Every report says what the update weighs in full and whether deltas carried it: the twin
      // reads "1.6 MiB of 47 MiB (delta)" from it, the campaign sums it.
      const viaDelta = routes.jobs.length > 0;
      const emit = onProgress ? (p: FetchProgress) => onProgress({ ...p, full, delta: viaDelta }) : undefined;
      const progress = new ProgressTracker(emit);
      for (const p of plans) progress.addImage(p.content.ref);
      const moving = [...targets, ...routes.jobs.map((j) => j.download)];
      for (const t of moving) progress.addBlob(t.image, t.digest, t.size);
      for (const t of moving) progress.set(t.digest, await store.partialSize(t.digest));
      progress.flush();
      const [fulls, rebuilds] = await Promise.allSettled([
        downloadAll(targets, progress, signal),
        deltas.rebuildAll(routes.jobs, (job, n) => progress.set(job.download.digest, n), signal),
      ]);
      if (fulls.status === 'rejected') throw fulls.reason;
      if (rebuilds.status === 'rejected') throw rebuilds.reason;
      const { rebuilt, fallbacks } = rebuilds.value;
      for (const [k, v] of routes.rebuilt) rebuilt.set(k, v);
      const late = fallbacks.map((f) => f.layer.target);
      if (late.length > 0) {
        await checkDiskSpace({ stateDir: opts.stateDir, missingBytes: await stillMissing(late), marginBytes, docker: opts.docker, log });
        for (const t of late) progress.addBlob(t.image, t.digest, t.size);
        await downloadAll(late, progress, signal);
      }
      progress.flush();

      const host = (await handover()).host;
      const outcome = outcomes(routes, rebuilt, fallbacks);
      const result: Record<string, { imageId: string; delta?: DeltaOutcome }> = {};
      for (const p of plans) {
        signal?.throwIfAborted();
        try {
          const delta = outcome.get(p.content.ref);
          result[p.content.ref] = { imageId: await handOver(p, host, rebuilt), ...(delta ? { delta } : {}) };
        } catch (err) {
          throw namingImage(p.content.ref, err);
        }
      }
      log.info({ op, images: Object.keys(result).length }, 'images present in the engine');
      return result;
    },

    async prune(keep) {
      await pruneStore(store, opts.docker, opts.deviceId, keep, log);
      for (const c of [...contents.keys()]) if (!keep.includes(c)) contents.delete(c);
    },

    async close() {
      const r = registry;
      registry = undefined;
      if (r) await (await r).close();
    },
  };
}

