import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { writeFileAtomic } from '../../common/atomic-file.js';
import { applyDeltaTo, DeltaError, encodeDelta, FORMAT_VERSION, openFileSource, TarFormatError, type EncodeStats } from '../../common/delta/index.js';
import { digestHex } from '../../common/digest.js';
import type { Logger } from '../../common/log.js';
import type { ProxyParts } from './images.js';
import type { DeltaJobs } from './jobs.js';
import { layerTar, LayerDigestError } from './layer-tar.js';

/** A layer blob in the cache, named by the repository it can be fetched from. */
export interface LayerRef {
  name: string;
  digest: string;
  size: number;
  diffId: string;
}

/** What a (from, to) pair came to: a delta in the cache, or the reason there is none. */
export type PairOutcome = { kind: 'delta'; digest: string; size: number } | { kind: 'failed'; reason: string };

interface PairRecord {
  from: string;
  to: string;
  outcome: PairOutcome;
  stats?: EncodeStats;
  computeMs?: number;
  at: string;
}

export interface DeltaCacheOptions {
  /** zstd level of the deltas (default 19: computed once, fetched by every gateway). */
  level?: number;
  /** Changed files above this size travel as literals (default: the format's cap, 8 MiB). */
  patchCap?: number;
  /** How long a failure that may pass (upstream down) is answered before trying again. */
  retryFailuresAfterMs?: number;
}

/** Failures that a later try would repeat: the layers themselves are the problem. */
const lasting = (err: unknown): boolean => err instanceof TarFormatError || err instanceof DeltaError || err instanceof LayerDigestError;

/**
 * Deltas on disk, content-addressed, with one record per (from, to, format version):
 *   <cache-dir>/deltas/blobs/<hex>                  delta files (name = their sha256)
 *   <cache-dir>/deltas/pairs/v1/<from hex>-<to hex>.json   what the pair came to
 *   <cache-dir>/deltas/tmp/                          uncompressed bases and deltas being made
 */
export class DeltaCache {
  private readonly dir: string;
  private readonly transient = new Map<string, { outcome: PairOutcome; until: number }>();

  constructor(cacheDir: string, private readonly parts: ProxyParts, private readonly jobs: DeltaJobs, private readonly log: Logger, private readonly opts: DeltaCacheOptions = {}) {
    this.dir = join(cacheDir, 'deltas');
  }

  async open(): Promise<void> {
    await rm(join(this.dir, 'tmp'), { recursive: true, force: true });
    for (const sub of ['blobs', 'tmp', join('pairs', `v${FORMAT_VERSION}`)]) await mkdir(join(this.dir, sub), { recursive: true });
  }

  deltaPath(digest: string): string {
    return join(this.dir, 'blobs', digestHex(digest));
  }

  private key(from: string, to: string): string {
    return `delta:${digestHex(from)}-${digestHex(to)}`;
  }

  private recordPath(from: string, to: string): string {
    return join(this.dir, 'pairs', `v${FORMAT_VERSION}`, `${digestHex(from)}-${digestHex(to)}.json`);
  }

  /** The pair's outcome when known (computed, or failed lately); undefined otherwise. */
  async known(from: string, to: string): Promise<PairOutcome | undefined> {
    const t = this.transient.get(this.key(from, to));
    if (t && t.until > Date.now()) return t.outcome;
    let record: PairRecord;
    try {
      record = JSON.parse(await readFile(this.recordPath(from, to), 'utf8')) as PairRecord;
    } catch {
      return undefined;
    }
    if (record.outcome.kind === 'delta' && !(await stat(this.deltaPath(record.outcome.digest)).then(() => true, () => false))) return undefined;
    return record.outcome;
  }

  /** Computes the pair unless it is known or under way; settles with its outcome. */
  ensure(base: LayerRef, target: LayerRef, log: Logger): Promise<PairOutcome> {
    return this.jobs.run(this.key(base.diffId, target.diffId), async () => {
      const done = await this.known(base.diffId, target.diffId);
      if (done) return done;
      const t0 = performance.now();
      let record: PairRecord;
      try {
        const made = await this.compute(base, target, log);
        record = { from: base.diffId, to: target.diffId, outcome: { kind: 'delta', digest: made.digest, size: made.size }, stats: made.stats, computeMs: Math.round(performance.now() - t0), at: new Date().toISOString() };
        log.info({ from: base.diffId, to: target.diffId, delta: made.digest, size: made.size, layer: target.size, ms: record.computeMs, ...made.stats }, 'delta computed');
      } catch (err) {
        const reason = `delta could not be computed: ${(err as Error).message}`;
        log.warn({ from: base.diffId, to: target.diffId, err: (err as Error).message }, 'delta failed');
        if (!lasting(err)) {
          const outcome: PairOutcome = { kind: 'failed', reason };
          this.transient.set(this.key(base.diffId, target.diffId), { outcome, until: Date.now() + (this.opts.retryFailuresAfterMs ?? 60_000) });
          return outcome;
        }
        record = { from: base.diffId, to: target.diffId, outcome: { kind: 'failed', reason }, at: new Date().toISOString() };
      }
      await writeFileAtomic(this.recordPath(base.diffId, target.diffId), JSON.stringify(record));
      return record.outcome;
    });
  }

  /**
   * Both blobs from the verified cache; the base unpacked to a temp file (deltas COPY from it
   * at random), the target streamed; the result applied once before it is kept.
   */
  private async compute(base: LayerRef, target: LayerRef, log: Logger): Promise<{ digest: string; size: number; stats: EncodeStats }> {
    const stem = join(this.dir, 'tmp', randomBytes(8).toString('hex'));
    const baseBlob = await this.parts.blob(base.name, base.digest, log);
    let targetBlob: { path: string; release(): void } | undefined;
    try {
      targetBlob = await this.parts.blob(target.name, target.digest, log);
      await pipeline(Readable.from(layerTar(baseBlob.path, base.diffId, `base layer ${base.digest}`)), createWriteStream(`${stem}.base.tar`));
      const src = await openFileSource(`${stem}.base.tar`);
      try {
        const made = await encodeDelta({
          base: src,
          target: layerTar(targetBlob.path, target.diffId, `target layer ${target.digest}`),
          outPath: `${stem}.delta`,
          level: this.opts.level ?? 19,
          patchCap: this.opts.patchCap,
        });
        // An encoder bug must cost one computation here, not a failed update on every gateway.
        const check = await applyDeltaTo(src, createReadStream(`${stem}.delta`), async () => undefined);
        if (check.diffId !== target.diffId) throw new DeltaError(`self-check: the delta rebuilds ${check.diffId}, not ${target.diffId}`);
        await rename(`${stem}.delta`, this.deltaPath(made.digest));
        return { digest: made.digest, size: made.size, stats: made.stats };
      } finally {
        await src.close();
      }
    } finally {
      baseBlob.release();
      targetBlob?.release();
      await rm(`${stem}.base.tar`, { force: true });
      await rm(`${stem}.delta`, { force: true });
    }
  }
}
