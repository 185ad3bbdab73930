import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, Writable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { pseudoRandomBytes } from '../rig/forge.js';
import { gnuTar } from '../rig/gnu-tar.js';
import { debianPairs } from './debian-pairs.js';
import { MB, MiB } from './engine.js';
import { runWorker, sampleMemory, scratchDir } from './proc.js';
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

/** Runs a command, sampling its memory; resolves with wall seconds and peak RSS in bytes. */
function timed(cmd: string, args: string[]): Promise<{ s: number; peak: number }> {
  const t0 = performance.now();
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const mem = sampleMemory(child.pid as number, 20);
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  return new Promise((resolve, reject) => {
    child.on('exit', (code) => {
      const { hwm, peakRss } = mem.stop();
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.slice(-500)}`));
      else resolve({ s: (performance.now() - t0) / 1000, peak: Math.max(hwm, peakRss) });
    });
  });
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

type WorkerOut = { ms: number; maxRssKiB: number; size?: number; diffId?: string };

async function measurePair(pair: Pair, dir: string, quick: boolean, log: BenchOptions['log']): Promise<BenchRow[]> {
  const work = (job: Record<string, unknown>) => runWorker<WorkerOut>('delta-worker.js', job, { logFile: join(dir, 'delta-worker.log'), timeoutMs: 30 * 60_000 });
  const delta = join(dir, `${pair.key}.delta`);
  const zst = join(dir, `${pair.key}.zst`);
  const rebuilt = join(dir, `${pair.key}-rebuilt.tar`);
  try {
    const layer = await layerOf(pair.target);
    const layerMB = layer.gzipBytes / MB;
    const enc = await work({ op: 'encode', base: pair.base, target: pair.target, out: delta, level: LEVEL });
    const deltaMB = (enc.size as number) / MB;
    const apply: WorkerOut[] = [];
    for (let i = 0; i < (quick ? 1 : 3); i++) {
      apply.push(await work({ op: 'apply', base: pair.base, delta, out: rebuilt, expect: layer.diffId }));
      rmSync(rebuilt, { force: true });
    }
    const z = await timed('zstd', [...ZSTD, `--patch-from=${pair.base}`, pair.target, '-o', zst]);
    const zMB = statSync(zst).size / MB;
    const zd = await timed('zstd', ['-d', '--long=27', '-q', '-f', `--patch-from=${pair.base}`, zst, '-o', rebuilt]);
    log(`deltas ${pair.key}: delta ${deltaMB.toFixed(3)} MB, layer ${layerMB.toFixed(2)} MB, zstd patch-from ${zMB.toFixed(3)} MB; encode ${(enc.ms / 1000).toFixed(1)} s / ${(enc.maxRssKiB / 1024).toFixed(0)} MiB; apply ${(apply[0].ms / 1000).toFixed(2)} s / ${(apply[0].maxRssKiB / 1024).toFixed(0)} MiB`);
    const one = (n: number): Stat => stat([n]);
    const m = (what: string): string => `${pair.metric}: ${what}`;
    const zName = 'zstd -19 --long --patch-from';
    return [
      compare('deltas', m('delta bytes'), 'MB', one(deltaMB), 'full layer (gzip -6, as docker pull)', one(layerMB), pair.note),
      compare('deltas', m('delta bytes'), 'MB', one(deltaMB), zName, one(zMB), `zstd ${ZSTD.join(' ')}: whole tar against whole tar`),
      compare('deltas', m('compute time'), 's', one(enc.ms / 1000), zName, one(z.s), `Berth: encodeDelta at level ${LEVEL} in a process of its own (the proxy also unpacks the base and applies the delta once to check it)`),
      compare('deltas', m('peak memory computing'), 'MiB', one(enc.maxRssKiB / 1024), zName, one(z.peak / MiB), 'Berth: the whole Node process (peak RSS)'),
      compare('deltas', m('apply time'), 's', stat(apply.map((a) => a.ms / 1000)), 'zstd -d --long --patch-from', one(zd.s), 'base tar on disk, delta streamed, output hashed into a temp file'),
      compare('deltas', m('peak memory applying'), 'MiB', stat(apply.map((a) => a.maxRssKiB / 1024)), 'zstd -d --long --patch-from', one(zd.peak / MiB), 'Berth: the whole Node process (peak RSS), bare Node included'),
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
        const [p] = debianPairs(dir.dir, log, [key]);
        rows.push(...(await measurePair({ ...p, note: `${p.packages} packages, ${p.upgraded} upgraded` }, dir.dir, quick, log)));
      }
      rows.push(...(await measurePair(forgedPair(dir.dir, quick ? 0.1 : 1), dir.dir, quick, log)));
    } finally {
      dir.remove();
    }
    return rows;
  },
};
