import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Baselines that are pure functions of their inputs, kept between runs. `zstd -19 --long
 * --patch-from` of one layer tar against another gives the same bytes every time for the same two
 * tars and the same zstd: computing it took most of the delta bench's wall time (minutes per pair
 * on a shared 2-core machine), so the patch file is kept, keyed by both diff_ids, zstd's version and
 * its arguments, in the bench cache dir (BERTH_BENCH_BASELINE_CACHE, default
 * ~/.cache/berth-bench/baselines). The cost of making it (time, CPU, peak memory) is kept beside it
 * with the date and load it was measured at, and rows built from it say "cached".
 * BERTH_BENCH_RECOMPUTE=1 (or `run.js --recompute`) measures again and replaces the entry.
 * `npm test` never reads any of this.
 */

export interface PatchCost {
  /** Wall seconds, CPU seconds (user + system) and peak RSS in bytes of making the patch. */
  seconds: number;
  cpuSeconds: number;
  peakBytes: number;
}

export interface CachedPatch extends PatchCost {
  /** The patch file in the cache (read it, never write it). */
  path: string;
  bytes: number;
  measuredAt: string;
  load: string;
  tool: string;
}

export function baselineCacheDir(): string {
  return process.env.BERTH_BENCH_BASELINE_CACHE ?? join(homedir(), '.cache', 'berth-bench', 'baselines');
}

export const recomputeBaselines = (): boolean => process.env.BERTH_BENCH_RECOMPUTE === '1';

/** `zstd --version`'s first line, which names the version the bytes depend on. */
export function zstdVersion(): string {
  return execFileSync('zstd', ['--version'], { encoding: 'utf8' }).trim().split('\n')[0];
}

/** The cache key: a digest of everything the patch's bytes depend on. */
export function patchKey(parts: { tool: string; args: string[]; baseDiffId: string; targetDiffId: string }): string {
  for (const d of [parts.baseDiffId, parts.targetDiffId]) if (!/^sha256:[0-9a-f]{64}$/.test(d)) throw new Error(`patchKey: ${JSON.stringify(d)} is not a sha256 diff_id`);
  return createHash('sha256').update(JSON.stringify([parts.tool, parts.args, parts.baseDiffId, parts.targetDiffId])).digest('hex');
}

const META_FIELDS = ['bytes', 'seconds', 'cpuSeconds', 'peakBytes', 'measuredAt', 'load', 'tool'] as const;

/**
 * The cached patch for `key`, or null when there is none, recomputing is asked for, or the entry
 * does not hold together (a torn or edited entry is ignored and will be replaced). The caller still
 * checks the patch rebuilds the target's diff_id before it uses the figures.
 */
export function readCachedPatch(key: string, dir = baselineCacheDir()): CachedPatch | null {
  if (recomputeBaselines()) return null;
  const path = join(dir, `${key}.zst`);
  const metaPath = join(dir, `${key}.json`);
  if (!existsSync(path) || !existsSync(metaPath)) return null;
  try {
    const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as Record<string, unknown>;
    if (META_FIELDS.some((f) => meta[f] === undefined)) return null;
    if (meta.bytes !== statSync(path).size) return null;
    return { path, ...(meta as Omit<CachedPatch, 'path'>) };
  } catch {
    return null;
  }
}

/**
 * Stores a patch made just now: the file is copied in under a temp name and renamed, and its
 * figures are written last, so a reader never sees figures without their whole patch.
 */
export function storePatch(key: string, file: string, meta: Omit<CachedPatch, 'path' | 'bytes'>, dir = baselineCacheDir()): void {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${key}.zst`);
  const tmp = `${path}.${process.pid}.tmp`;
  copyFileSync(file, tmp);
  renameSync(tmp, path);
  const metaTmp = join(dir, `${key}.json.${process.pid}.tmp`);
  writeFileSync(metaTmp, JSON.stringify({ ...meta, bytes: statSync(path).size }, null, 2) + '\n');
  renameSync(metaTmp, join(dir, `${key}.json`));
}

/** Drops an entry that failed its check (its patch did not rebuild the target). */
export function dropPatch(key: string, dir = baselineCacheDir()): void {
  for (const f of [`${key}.json`, `${key}.zst`]) rmSync(join(dir, f), { force: true });
}
