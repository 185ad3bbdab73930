import type { HttpsTrust } from '../../common/tls-trust.js';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import type { EngineClient } from '../engine/client.js';
import { DeltaError, HEADER_BYTES, type DeltaHeader } from '../../common/delta/format.js';
import { settledDeltaPlan } from '../../common/delta/plan-client.js';
import type { DeltaPlanResponse } from '../../common/delta/wire.js';
import { digestHex } from '../../common/digest.js';
import type { Logger } from '../gateway-log.js';
import { NoBaseError, openBase } from './delta-base.js';
import { checkDeltaHeader, DELTA_MIN_LAYER_BYTES, deltaDiskBytes, routeLayers, type FallbackReason, type LayerRoute, type MissingLayer } from './delta-plan.js';
import { engineImage } from './engine.js';
import { BlobVerificationError } from './errors.js';
import type { DeltaOutcome } from '../images.js';
import type { GcPacer } from './gc-pacer.js';
import type { BlobTarget, ProxyClient } from './proxy-client.js';
import type { DownloadStore } from './store.js';

/** An image as the delta path needs it: its name on the proxy and its signed layer list. */
export interface DeltaImage {
  ref: string;
  /** `ALIAS/REPO@<manifest digest>`, the proxy's form. */
  proxyImage: string;
  /** os/arch[/variant] of the entry picked when the image is an index (the proxy must pick the same). */
  platform?: string;
  configDigest: string;
  diffIds: string[];
}

/** A missing layer of an image and the blob that brings it in full. */
export type WantedLayer = MissingLayer & { target: BlobTarget };

export interface DeltaJob {
  image: string;
  layer: WantedLayer;
  header: DeltaHeader;
  /** The delta, fetched like a blob (resumable) into the store. */
  download: BlobTarget;
  base: { diffId: string; digest: string; engineImage?: string };
}

export interface Fallback {
  image: string;
  layer: WantedLayer;
  reason: FallbackReason;
  detail: string;
}

export interface DeltaRoutes {
  jobs: DeltaJob[];
  /** Layers that travel in full; those with a reason were offered to the delta path first. */
  full: { target: BlobTarget; fallback?: Fallback }[];
  /** Layer blob digest → its tar, already rebuilt in the store (an earlier attempt got that far). */
  rebuilt: Map<string, { diffId: string; size: number }>;
  /** Disk the deltas need, beside the full layers' bytes. */
  disk: { state: number; engine: number };
}

export interface DeltaDeps {
  store: DownloadStore;
  client: ProxyClient;
  docker: EngineClient;
  log: Logger;
  registryProxy: string;
  trust?: HttpsTrust;
  pullToken: () => Promise<string>;
  /** How long to wait for the proxy to compute deltas before taking layers in full. */
  planWaitMs: number;
  /** Counts the bytes of fresh buffers (gunzipped or `docker save`d bases, the delta read back) and collects them as they go. */
  pacer?: GcPacer;
}

function reasonOf(err: unknown): FallbackReason {
  if (err instanceof NoBaseError) return 'no-base';
  if (err instanceof BlobVerificationError) return 'bad-digest';
  if (err instanceof DeltaError) return /hashes to|rebuilt layer is/.test(err.message) ? 'bad-digest' : 'apply-error';
  return 'unavailable';
}

/**
 * The gateway's half of issue 11: asks the proxy which missing layers can come as deltas from the
 * images the gateway runs, and rebuilds them. A delta is applied to a base from the store or the
 * engine into a temp file while hashing, and the tar reaches the store (and so the engine) only
 * when it hashes to the signed diff_id. Any failure sends the layer back to the full path.
 */
export class DeltaRebuilder {
  constructor(private readonly deps: DeltaDeps) {}

  private async plan(image: DeltaImage, have: DeltaImage[], signal?: AbortSignal): Promise<DeltaPlanResponse | { error: string }> {
    try {
      return await settledDeltaPlan({
        proxy: this.deps.registryProxy,
        trust: this.deps.trust,
        token: await this.deps.pullToken(),
        // The gateway's platform, as it picked it from an index: the proxy refuses to guess among
        // an index's images, and must resolve the target and the bases as the gateway did.
        request: { target: image.proxyImage, have: have.map((h) => h.proxyImage), ...platformOf(image, have) },
        maxWaitMs: this.deps.planWaitMs,
        signal,
      });
    } catch (err) {
      signal?.throwIfAborted();
      return { error: `no delta plan: ${(err as Error).message}` };
    }
  }

  /** An engine image holding the base, when the engine still has one (for `docker save`). */
  private async engineHolder(base: { image: string; diffId: string }, have: DeltaImage[]): Promise<string | undefined> {
    const holder = have.find((h) => h.proxyImage === base.image && h.diffIds.includes(base.diffId)) ?? have.find((h) => h.diffIds.includes(base.diffId));
    if (!holder) return undefined;
    return (await engineImage(this.deps.docker, holder.configDigest).catch(() => undefined)) ? holder.configDigest : undefined;
  }

  /** Routes every missing layer of `wanted` images: already rebuilt, a delta job, or in full. */
  async route(wanted: { image: DeltaImage; layers: WantedLayer[] }[], have: DeltaImage[], signal?: AbortSignal): Promise<DeltaRoutes> {
    const out: DeltaRoutes = { jobs: [], full: [], rebuilt: new Map(), disk: { state: 0, engine: 0 } };
    const { store, client } = this.deps;
    for (const { image, layers } of wanted) {
      const open: WantedLayer[] = [];
      for (const l of layers) {
        const size = await store.size(l.diffId);
        if (size !== undefined) out.rebuilt.set(l.digest, { diffId: l.diffId, size });
        // Not offered to the delta path, so no fallback is reported for it.
        else if (l.size < DELTA_MIN_LAYER_BYTES) out.full.push({ target: l.target });
        else open.push(l);
      }
      if (open.length === 0) continue;
      const plan = have.length > 0 ? await this.plan(image, have, signal) : { error: 'the gateway runs no earlier release to start from' };
      for (const r of routeLayers(open, plan)) {
        const layer = r.layer as WantedLayer;
        const fallback = (reason: FallbackReason, detail: string): void => {
          out.full.push({ target: layer.target, fallback: { image: image.ref, layer, reason, detail } });
        };
        if (r.kind === 'full') {
          fallback(r.reason, r.detail);
          continue;
        }
        const base = { diffId: r.base.diffId, digest: r.base.digest, engineImage: await this.engineHolder(r.base, have) };
        const inStore = (await store.has(base.diffId)) || (await store.has(base.digest));
        if (!inStore && !base.engineImage) {
          fallback('no-base', `base layer ${base.diffId} is neither in the store nor in the engine`);
          continue;
        }
        let header: DeltaHeader;
        try {
          header = checkDeltaHeader(await client.leadingBytes(r.delta.url, HEADER_BYTES, `header of delta ${r.delta.digest}`, signal), r);
        } catch (err) {
          signal?.throwIfAborted();
          fallback(reasonOf(err), (err as Error).message);
          continue;
        }
        const download = { repository: layer.target.repository, digest: r.delta.digest, size: r.delta.size, image: image.ref, path: r.delta.url };
        out.jobs.push({ image: image.ref, layer, header, download, base });
        const need = deltaDiskBytes(header, r.delta.size, await store.has(base.diffId));
        out.disk.state += need.state;
        out.disk.engine += need.engine;
      }
    }
    return out;
  }

  /**
   * Downloads each delta (resumable, verified like a blob) and rebuilds its layer into the store,
   * one at a time (memory: one apply's buffers). Returns the layers that must now come in full.
   */
  async rebuildAll(jobs: DeltaJob[], onBytes: (job: DeltaJob, n: number) => void, signal?: AbortSignal): Promise<{ rebuilt: Map<string, { diffId: string; size: number }>; fallbacks: Fallback[] }> {
    const rebuilt = new Map<string, { diffId: string; size: number }>();
    const fallbacks: Fallback[] = [];
    for (const job of jobs) {
      try {
        await this.deps.client.downloadBlob(this.deps.store, job.download, (n) => onBytes(job, n), signal);
        rebuilt.set(job.layer.digest, await this.rebuild(job));
      } catch (err) {
        signal?.throwIfAborted();
        const f: Fallback = { image: job.image, layer: job.layer, reason: reasonOf(err), detail: (err as Error).message };
        this.deps.log.warn({ image: job.image, layer: job.layer.diffId, delta: job.download.digest, reason: f.reason, err: f.detail }, 'delta not used; fetching the layer in full');
        fallbacks.push(f);
      }
      // A delta cut for good keeps its partial file: the next attempt resumes it from the bytes on disk.
      await this.deps.store.remove(job.download.digest);
    }
    return { rebuilt, fallbacks };
  }

  private async rebuild(job: DeltaJob): Promise<{ diffId: string; size: number }> {
    const { store, docker } = this.deps;
    const moved = this.deps.pacer ? (n: number) => this.deps.pacer?.moved(n) : undefined;
    const base = await openBase(store, docker, { ...job.base, size: job.header.fromSize }, store.workDir, moved);
    const outPath = join(store.workDir, `layer-${digestHex(job.layer.diffId)}.tar`);
    try {
      const delta = pacedStream(createReadStream(store.blobPath(job.download.digest), { highWaterMark: 256 << 10 }), moved);
      // expectDiffId is the signed config's, not the delta's claim: nothing else reaches the store.
      // Loaded with the first delta rebuilt, not with the download code: it brings zstd-napi, a native
      // binding (its library and the symbol lookups of loading it: ~1.5 MiB resident, never unloaded),
      // which a gateway that only ever downloads full layers does not need.
      const { applyDelta } = await import('../../common/delta/apply.js');
      const result = await applyDelta({ base, delta, outPath, expectDiffId: job.layer.diffId });
      await store.adopt(job.layer.diffId, outPath);
      this.deps.log.info({ image: job.image, layer: job.layer.diffId, delta: job.download.size, size: result.size }, 'layer rebuilt from a delta');
      return { diffId: result.diffId, size: result.size };
    } finally {
      await base.close();
    }
  }
}

/** What the fetcher knows of a resolved image, as far as deltas need it. */
export interface ResolvedLike {
  ref: string;
  proxyRepository: string;
  manifestDigest: string;
  platform?: string;
  configDigest: string;
  diffIds: string[];
  layers: { digest: string; size: number }[];
}

/** The platform the gateway picked, from the target or else a base that is an index; none when neither is. */
export function platformOf(image: DeltaImage, have: DeltaImage[]): { platform?: string } {
  const platform = image.platform ?? have.find((h) => h.platform)?.platform;
  return platform ? { platform } : {};
}

/** The stream's chunks as they come, each counted by `moved` first. */
async function* pacedStream(stream: AsyncIterable<Buffer>, moved: ((bytes: number) => void) | undefined): AsyncGenerator<Buffer> {
  for await (const chunk of stream) {
    moved?.(chunk.length);
    yield chunk;
  }
}

export function deltaImageOf(c: ResolvedLike): DeltaImage {
  return { ref: c.ref, proxyImage: `${c.proxyRepository}@${c.manifestDigest}`, platform: c.platform, configDigest: c.configDigest, diffIds: c.diffIds };
}

/** The blobs to fetch, grouped by the image they were attributed to, with each layer's index and diff_id. */
export function wantedLayers(images: ResolvedLike[], targets: BlobTarget[]): { image: DeltaImage; layers: WantedLayer[] }[] {
  return images
    .map((c) => ({
      image: deltaImageOf(c),
      layers: targets.flatMap((target) => {
        const index = target.image === c.ref ? c.layers.findIndex((l) => l.digest === target.digest) : -1;
        return index < 0 ? [] : [{ index, digest: target.digest, diffId: c.diffIds[index], size: target.size, target }];
      }),
    }))
    .filter((w) => w.layers.length > 0);
}

/** Every wanted blob in full, no delta tried (deltas off, or nothing missing). */
export function allFull(wanted: BlobTarget[]): DeltaRoutes {
  return { jobs: [], full: wanted.map((target) => ({ target })), rebuilt: new Map(), disk: { state: 0, engine: 0 } };
}

/** Per image: how many of its layers were rebuilt from deltas and which fell back to the full layer. */
export function outcomes(routes: DeltaRoutes, rebuilt: Map<string, unknown>, late: Fallback[]): Map<string, DeltaOutcome> {
  const out = new Map<string, DeltaOutcome>();
  const of = (image: string): DeltaOutcome => {
    const o = out.get(image) ?? { rebuilt: 0, fallbacks: [] };
    out.set(image, o);
    return o;
  };
  for (const j of routes.jobs) if (rebuilt.has(j.layer.digest)) of(j.image).rebuilt++;
  for (const f of [...routes.full.flatMap((x) => (x.fallback ? [x.fallback] : [])), ...late]) of(f.image).fallbacks.push({ layer: f.layer.diffId, reason: f.reason, detail: f.detail });
  return out;
}
