import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, Writable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { pseudoRandomBytes } from '../rig/forge.js';
import { gnuTar } from '../rig/gnu-tar.js';
import { dropPatch, patchKey, readCachedPatch, storePatch, zstdVersion, type PatchCost } from './baseline-cache.js';
import { debianPairs } from './debian-pairs.js';
import { MB, MiB } from './engine.js';
import { cpuSecondsOf, memoryOf, runWorker, scratchDir } from './proc.js';
import { compare, stat, type Bench, type BenchOptions, type BenchRow, type Stat } from './stats.js';

/**
 * Layer deltas on realistic pairs (Debian packages before and after an upgrade, see
 * debian-pairs.ts) and one forged pair: the size of Berth's delta against the full gzip layer
 * (what `docker pull`, and Berth without deltas, move for it) and against
 * `zstd -19 --long=27 --patch-from` of the same tars; the cost of computing it and of applying it,
 * each in a process of its own (delta-worker.ts), against zstd's. The proxy's path (plan, GET with
 * Range, apply) is covered by test/integration/registry-proxy-delta.test.ts; on the wire a delta
 * costs its size plus one HTTP response header.
 */

interface Pair {
  key: string;
  metric: string;
  base: string;
  target: string;
  note: string;
}

const LEVEL = 19;
const ZSTD = ['-19', '--long=27', '-q', '-f'];
const ZSTD_CACHE_NOTE = 'by both diff_ids and zstd --version; BERTH_BENCH_RECOMPUTE=1 remakes it';

/**
 * Runs a command, sampling it every 20 ms from /proc; resolves with wall seconds, CPU seconds
 * (user + system, to the last sample) and peak RSS in bytes.
 */
function timed(cmd: string, args: string[]): Promise<PatchCost> {
  const t0 = performance.now();
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const pid = child.pid as number;
  // An interrupted run (the runner exits on SIGINT) must not leave a zstd of minutes behind.
  const kill = (): void => void child.kill('SIGKILL');
  process.once('exit', kill);
  let cpuSeconds = 0;
  let peakBytes = 0;
  const sample = (): void => {
    try {
      const m = memoryOf(pid);
      peakBytes = Math.max(peakBytes, m.rss, m.hwm);
      cpuSeconds = cpuSecondsOf(pid);
    } catch {
      // gone: keep the last sample
    }
  };
  const timer = setInterval(sample, 20);
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  return new Promise((resolve, reject) => {
    child.on('exit', (code) => {
      clearInterval(timer);
      process.off('exit', kill);
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.slice(-500)}`));
      else resolve({ seconds: (performance.now() - t0) / 1000, cpuSeconds, peakBytes });
    });
  });
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return 'sha256:' + hash.digest('hex');
}

interface Baseline {
  patch: string;
  bytes: number;
  make: PatchCost;
  /** Set when the patch and its cost come from the cache: when and at what load they were measured. */
  cached?: { measuredAt: string; load: string; key: string };
}

/**
 * zstd's patch of the target against the base: from the baseline cache when it holds one for these
 * two diff_ids and this zstd (see baseline-cache.ts), else made now and stored.
 */
async function zstdPatch(pair: Pair, baseDiffId: string, targetDiffId: string, out: string, log: BenchOptions['log']): Promise<Baseline> {
  const tool = zstdVersion();
  const key = patchKey({ tool, args: ZSTD, baseDiffId, targetDiffId });
  const hit = readCachedPatch(key);
  if (hit) {
    log(`deltas ${pair.key}: zstd patch from the cache (${hit.path}, made ${hit.measuredAt}); BERTH_BENCH_RECOMPUTE=1 makes it again`);
    return { patch: hit.path, bytes: hit.bytes, make: hit, cached: { measuredAt: hit.measuredAt, load: hit.load, key } };
  }
  const load = loadavg()[0].toFixed(1);
  const make = await timed('zstd', [...ZSTD, `--patch-from=${pair.base}`, pair.target, '-o', out]);
  storePatch(key, out, { ...make, measuredAt: new Date().toISOString(), load, tool });
  return { patch: out, bytes: statSync(out).size, make };
}

/** The tar's diff_id, and its size gzipped at docker's level (6), without writing it anywhere. */
async function layerOf(path: string): Promise<{ diffId: string; gzipBytes: number }> {
  let gzipBytes = 0;
  const hash = createHash('sha256');
  const tee = new Transform({ transform(chunk: Buffer, _e, done) { hash.update(chunk); done(null, chunk); } });
  await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), tee, createGzip({ level: 6 }), new Writable({ write(chunk: Buffer, _e, done) { gzipBytes += chunk.length; done(); } }));
  return { diffId: 'sha256:' + hash.digest('hex'), gzipBytes };
}

function forgedPair(dir: string, scale: number): Pair {
  const files: Record<string, Buffer> = {};
  for (let i = 0; i < 20; i++) files[`usr/lib/lib${i}.so`] = pseudoRandomBytes(Math.round(5 * MiB * scale), `delta-bench-lib${i}`);
  const base = join(dir, 'forged-v1.tar');
  const target = join(dir, 'forged-v2.tar');
  writeFileSync(base, gnuTar(files));
  for (const i of [3, 9, 15]) {
    const changed = Buffer.from(files[`usr/lib/lib${i}.so`]);
    pseudoRandomBytes(2048, `delta-bench-fix${i}`).copy(changed, 1000 * i);
    files[`usr/lib/lib${i}.so`] = changed;
  }
  writeFileSync(target, gnuTar(files));
  return { key: 'forged', metric: `${+(100 * scale).toFixed(1)} MiB of random libraries, 3 files × 2 KiB changed`, base, target, note: 'forged, incompressible' };
}

type WorkerOut = { ms: number; cpuMs: number; maxRssKiB: number; size?: number; diffId?: string };

async function measurePair(pair: Pair, dir: string, quick: boolean, log: BenchOptions['log']): Promise<BenchRow[]> {
  const work = (job: Record<string, unknown>) => runWorker<WorkerOut>('delta-worker.js', job, { logFile: join(dir, 'delta-worker.log'), timeoutMs: 30 * 60_000 });
  const delta = join(dir, `${pair.key}.delta`);
  const zst = join(dir, `${pair.key}.zst`);
  const rebuilt = join(dir, `${pair.key}-rebuilt.tar`);
  const steps: string[] = [];
  const step = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const out = await fn();
    steps.push(`${what} ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    return out;
  };
  try {
    const layer = await step('gzip', () => layerOf(pair.target));
    const layerMB = layer.gzipBytes / MB;
    const enc = await step('encode', () => work({ op: 'encode', base: pair.base, target: pair.target, out: delta, level: LEVEL }));
    const deltaMB = (enc.size as number) / MB;
    const apply: WorkerOut[] = [];
    // 2 applies since 2026-11-29 16:30 (were 3: 0.64-0.68 s and 73.6-75.5 MiB at 14:46, the tightest
    // spreads of the run), for the full bench's 25 min (issue 17).
    for (let i = 0; i < (quick ? 1 : 2); i++) {
      apply.push(await step('apply', () => work({ op: 'apply', base: pair.base, delta, out: rebuilt, expect: layer.diffId })));
      rmSync(rebuilt, { force: true });
    }
    const baseDiffId = await step('hash base', () => sha256Of(pair.base));
    let z = await step('zstd -19', () => zstdPatch(pair, baseDiffId, layer.diffId, zst, log));
    let zd = await step('zstd -d', () => timed('zstd', ['-d', '--long=27', '-q', '-f', `--patch-from=${pair.base}`, z.patch, '-o', rebuilt]));
    // Verify before use: the patch (cached or not) must rebuild the target exactly.
    if ((await sha256Of(rebuilt)) !== layer.diffId) {
      if (!z.cached) throw new Error(`deltas ${pair.key}: zstd's patch does not rebuild the target (${layer.diffId})`);
      log(`deltas ${pair.key}: the cached zstd patch ${z.cached.key} does not rebuild the target; dropped, making it again`);
      dropPatch(z.cached.key);
      z = await step('zstd -19 again', () => zstdPatch(pair, baseDiffId, layer.diffId, zst, log));
      zd = await step('zstd -d again', () => timed('zstd', ['-d', '--long=27', '-q', '-f', `--patch-from=${pair.base}`, z.patch, '-o', rebuilt]));
      if ((await sha256Of(rebuilt)) !== layer.diffId) throw new Error(`deltas ${pair.key}: zstd's patch does not rebuild the target (${layer.diffId})`);
    }
    rmSync(rebuilt, { force: true });
    const zMB = z.bytes / MB;
    log(`deltas ${pair.key} steps: ${steps.join(', ')}`);
    log(`deltas ${pair.key}: delta ${deltaMB.toFixed(3)} MB, layer ${layerMB.toFixed(2)} MB, zstd patch-from ${zMB.toFixed(3)} MB; encode ${(enc.ms / 1000).toFixed(1)} s (${(enc.cpuMs / 1000).toFixed(1)} s CPU) / ${(enc.maxRssKiB / 1024).toFixed(0)} MiB; apply ${(apply[0].ms / 1000).toFixed(2)} s / ${(apply[0].maxRssKiB / 1024).toFixed(0)} MiB`);
    const one = (n: number): Stat => stat([n]);
    const m = (what: string): string => `${pair.metric}: ${what}`;
    const zName = 'zstd -19 --long --patch-from';
    const cached = z.cached ? `; zstd's patch and cost cached (${ZSTD_CACHE_NOTE}), made ${z.cached.measuredAt.slice(0, 16)} at load ${z.cached.load}, checked to rebuild the target this run` : '';
    return [
      compare('deltas', m('delta bytes'), 'MB', one(deltaMB), 'full layer (gzip -6, as docker pull)', one(layerMB), pair.note),
      compare('deltas', m('delta bytes'), 'MB', one(deltaMB), zName, one(zMB), `zstd ${ZSTD.join(' ')}: whole tar against whole tar${cached}`),
      compare('deltas', m('compute CPU time'), 's', one(enc.cpuMs / 1000), zName, one(z.make.cpuSeconds), `user+system CPU, steadier than wall time on a shared machine (wall: Berth ${(enc.ms / 1000).toFixed(1)} s, zstd ${z.make.seconds.toFixed(1)} s); Berth: encodeDelta at level ${LEVEL} in a process of its own, its zstd thread included (the proxy also unpacks the base and applies the delta once to check it)${cached}`),
      compare('deltas', m('peak memory computing'), 'MiB', one(enc.maxRssKiB / 1024), zName, one(z.make.peakBytes / MiB), `Berth: the whole Node process (peak RSS)${cached}`),
      compare('deltas', m('apply time'), 's', stat(apply.map((a) => a.ms / 1000)), 'zstd -d --long --patch-from', one(zd.seconds), 'base tar on disk, delta streamed, output hashed into a temp file; both measured this run; 2 applies (3 until 2026-11-29 16:30)'),
      compare('deltas', m('peak memory applying'), 'MiB', stat(apply.map((a) => a.maxRssKiB / 1024)), 'zstd -d --long --patch-from', one(zd.peakBytes / MiB), 'Berth: the whole Node process (peak RSS), bare Node included; both measured this run; 2 applies (3 until 2026-11-29 16:30)'),
    ];
  } finally {
    for (const f of [delta, zst, rebuilt, pair.base, pair.target]) rmSync(f, { force: true });
  }
}

export const bench: Bench = {
  name: 'deltas',
  title: 'Layer deltas: bytes against the full layer and zstd --patch-from, compute and apply cost',
  async run({ quick, log }: BenchOptions): Promise<BenchRow[]> {
    const dir = scratchDir('deltas');
    const rows: BenchRow[] = [];
    try {
      // One pair on disk at a time: the tars are large.
      for (const key of quick ? ['python-app'] : ['debian-base', 'python-app']) {
        const t0 = performance.now();
        const [p] = debianPairs(dir.dir, log, [key]);
        log(`deltas ${key}: pair ready in ${((performance.now() - t0) / 1000).toFixed(1)} s${p.cached ? ' (layer tars from the cache, digests checked)' : ' (built, and stored in the cache)'}`);
        rows.push(...(await measurePair({ ...p, note: `${p.packages} packages, ${p.upgraded} upgraded` }, dir.dir, quick, log)));
      }
      rows.push(...(await measurePair(forgedPair(dir.dir, quick ? 0.1 : 1), dir.dir, quick, log)));
    } finally {
      dir.remove();
    }
    return rows;
  },
};
