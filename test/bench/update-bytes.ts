import { forgeImage, pseudoRandomBytes, variant, type ForgedImage, type LayerSpec } from '../rig/forge.js';
import { startRelay } from './relay.js';
import { benchRig, berthFetcher, dockerPull, MB, MiB, removeImages, type BenchRig } from './engine.js';
import { scratchDir } from './proc.js';
import { startProxyProcess } from './services.js';
import { compare, stat, type Bench, type BenchOptions, type BenchRow } from './stats.js';

/**
 * Bytes on the wire for an update v1 → v2: Berth's download channel (image fetcher → registry
 * proxy, counted by a relay in front of the proxy) against `docker pull` of v2 after v1 from the
 * same registry (counted by a relay in front of the registry). Each run starts with neither image in
 * the engine and a fresh daemon store. The fetcher is told it runs v1, as the daemon tells it the
 * images of the releases it ran: what it moves is the delta plan, its polls while the proxy computes,
 * the deltas it rebuilds layers from and any layer that goes in full (issue 11). The proxy keeps
 * the deltas it computed, so runs after the first find them ready (as a fleet's second gateway does).
 */

interface Scenario {
  key: string;
  metric: string;
  v1: LayerSpec[];
  v2: LayerSpec[];
}

function scenarios(scale: number, run: string): Scenario[] {
  const os: LayerSpec = { files: { '/etc/os-release': 'NAME=bench\n', '/bin/.keep': '' } };
  const big = (seed: string, size: number): LayerSpec => ({ files: { '/app/bundle.bin': pseudoRandomBytes(size, `${run}:${seed}`) } });
  const app50 = big('app50', Math.round(50 * MiB * scale));
  const app20 = big('app20', Math.round(20 * MiB * scale));
  const extra5: LayerSpec = { files: { '/opt/plugin.bin': pseudoRandomBytes(Math.round(5 * MiB * scale), `${run}:extra5`) } };
  const baseFiles: LayerSpec['files'] = {};
  for (let i = 0; i < 20; i++) baseFiles[`/usr/lib/lib${i}.so`] = pseudoRandomBytes(Math.round(5 * MiB * scale), `${run}:base${i}`);
  const base: LayerSpec = { files: baseFiles };
  let rebuilt = base;
  for (const i of [3, 9, 15]) rebuilt = variant(rebuilt, { path: `/usr/lib/lib${i}.so`, bytes: 2048, seed: `${run}:fix${i}` });
  const appSmall: LayerSpec = { files: { '/app/run.sh': { content: '#!/bin/sh\nexec sleep 3600\n', mode: 0o755 }, '/app/data.bin': pseudoRandomBytes(Math.round(1 * MiB * scale), `${run}:small`) } };
  const mb = (n: number) => `${+(n * scale).toFixed(1)} MiB`;
  return [
    { key: 'app-patch', metric: `4 KiB changed in a ${mb(50)} app layer`, v1: [os, app50], v2: [os, variant(app50, { path: '/app/bundle.bin', bytes: 4096, seed: `${run}:patch` })] },
    { key: 'new-layer', metric: `new ${mb(5)} layer on a ${mb(20)} app`, v1: [os, app20], v2: [os, app20, extra5] },
    { key: 'base-rebuild', metric: `${mb(100)} base rebuilt, 3 files × 2 KiB changed`, v1: [base, appSmall], v2: [rebuilt, appSmall] },
  ];
}

/** Compressed bytes of the layers v2 has and v1 does not: what a layer-granular transfer must move. */
function missingLayerBytes(v1: ForgedImage, v2: ForgedImage): number {
  const have = new Set(v1.layers.map((l) => l.digest));
  return v2.layers.filter((l) => !have.has(l.digest)).reduce((n, l) => n + l.size, 0);
}

async function berthRun(r: BenchRig, proxyUrl: string, v1: ForgedImage, v2: ForgedImage, device: string): Promise<{ bytes: number; rebuilt: number; fallbacks: string[] }> {
  const relay = await startRelay('127.0.0.1', Number(new URL(proxyUrl).port));
  const state = scratchDir('update-state');
  const fetcher = berthFetcher(r.docker, relay.url, state.dir, device);
  try {
    await fetcher.ensureImages([v1.reference], {});
    relay.reset();
    const got = await fetcher.ensureImages([v2.reference], { have: [v1.reference] });
    const delta = got[v2.reference].delta;
    return { bytes: relay.downstreamBytes(), rebuilt: delta?.rebuilt ?? 0, fallbacks: (delta?.fallbacks ?? []).map((f) => f.reason) };
  } finally {
    await fetcher.close();
    await relay.close();
    state.remove();
    await removeImages(r.docker, [v1.configDigest, v2.configDigest]);
  }
}

async function dockerRun(r: BenchRig, v1: ForgedImage, v2: ForgedImage): Promise<number> {
  const relay = await startRelay('127.0.0.1', r.registryPort);
  const through = (ref: string) => ref.replace(r.rig.registry, `127.0.0.1:${relay.port}`);
  try {
    await dockerPull(r.docker, through(v1.reference));
    relay.reset();
    await dockerPull(r.docker, through(v2.reference));
    return relay.downstreamBytes();
  } finally {
    await relay.close();
    await removeImages(r.docker, [v1.configDigest, v2.configDigest]);
  }
}

export const bench: Bench = {
  name: 'update-bytes',
  title: 'Update bytes on the wire: Berth download channel vs docker pull',
  async run({ quick, log }: BenchOptions): Promise<BenchRow[]> {
    const r = await benchRig();
    const run = `${process.pid}-${Date.now().toString(36)}`;
    // Berth 2 runs since 2026-11-29 16:30 (were 3; the full bench's 25 min, issue 17): the first
    // finds the deltas being computed, the second ready; their bytes differed by at most 0.01 MB in
    // every full run (0.27-0.27, 0.01-0.02 MB). The new layer goes whole, no delta: one run, as docker's.
    const runsOf = (key: string) => (quick || key === 'new-layer' ? 1 : 2);
    const dir = scratchDir('update-bytes');
    const proxy = await startProxyProcess(dir.dir, r.rig.registryUrl).catch((err: unknown) => {
      dir.remove();
      throw err;
    });
    const rows: BenchRow[] = [];
    try {
      for (const s of scenarios(quick ? 0.1 : 1, run)) {
        const repo = `bench/update-${s.key}-${run}`;
        const v1 = await forgeImage(r.rig.registry, repo, 'v1', { layers: s.v1 });
        const v2 = await forgeImage(r.rig.registry, repo, 'v2', { layers: s.v2 });
        await removeImages(r.docker, [v1.configDigest, v2.configDigest]);
        const berth: number[] = [];
        const routes = new Set<string>();
        const runs = runsOf(s.key);
        for (let i = 0; i < runs; i++) {
          const b = await berthRun(r, proxy.url, v1, v2, `bench-upd-${i}`);
          berth.push(b.bytes / MB);
          const route = `${b.rebuilt} layer(s) rebuilt from deltas${b.fallbacks.length ? `, in full: ${b.fallbacks.join(', ')}` : ''}`;
          routes.add(route);
          log(`update-bytes ${s.key} run ${i + 1}/${runs}: berth ${berth[i].toFixed(2)} MB (${route})`);
        }
        // docker pull moves the missing layers whole, plus manifest and config: the same bytes in
        // every run (n=3 until 2026-11-29 gave min = max), so one run.
        const docker = [(await dockerRun(r, v1, v2)) / MB];
        log(`update-bytes ${s.key}: docker pull ${docker[0].toFixed(2)} MB`);
        const missing = missingLayerBytes(v1, v2) / MB;
        const b = stat(berth);
        const d = stat(docker);
        rows.push(compare('update-bytes', s.metric, 'MB', b, 'docker pull', d, `missing layers ${missing.toFixed(2)} MB (docker pull moves them whole: one run, its bytes do not vary); Berth: ${[...routes].join(' / ')}, plan and polls included; Berth ${runs} run${runs > 1 ? 's' : ''} (3 until 2026-11-29 16:30${runs === 1 ? ': its bytes did not vary' : ''})`));
      }
    } finally {
      await proxy.stop();
      dir.remove();
    }
    return rows;
  },
};
