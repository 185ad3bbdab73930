import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { pseudoRandomBytes, pushBlobBytes } from '../rig/forge.js';
import { startRegistry } from '../rig/index.js';
import type { DownloadJob, DownloadResult } from './load.js';
import { MiB } from './engine.js';
import { cpuSecondsOf, memoryOf, runWorker, sampleMemory, scratchDir } from './proc.js';
import { startProxyProcess } from './services.js';
import { compare, stat, type Bench, type BenchOptions, type BenchRow } from './stats.js';

/**
 * Registry proxy vs the CNCF registry serving the same cached blob on loopback, 1 and 32 clients,
 * side by side in one run; time to first byte on a cache miss; the proxy's RSS with 32 clients.
 * Both servers are their own processes (a private CNCF registry, so other users of the rig's do
 * not interfere); the clients are a separate load-generator process (load.js), so the client
 * shares neither server's event loop. The registry-proxy owner's standalone variant is
 * proxy-throughput.ts (`node dist/test/bench/proxy-throughput.js`: best of rounds, cache-miss
 * MB/s, a client-side resume check, client in the bench process); the runner uses this one so the
 * table has medians with min/max and an out-of-process client like every other row.
 */

/** The pid listening on a loopback port (the private registry's), from `ss`; null if unknown. */
function listenerPid(port: string): number | null {
  try {
    const m = /pid=(\d+)/.exec(execFileSync('ss', ['-ltnpH', `sport = :${port}`], { encoding: 'utf8' }));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

async function download(url: string, clients: number, logFile: string): Promise<DownloadResult> {
  const job: DownloadJob = { kind: 'download', url, clients };
  const out = await runWorker<DownloadResult>('load.js', job, { logFile });
  const bad = out.statuses.filter((s) => s !== 200);
  if (bad.length) throw new Error(`GET ${url}: statuses ${bad.join(',')}`);
  return out;
}

export const bench: Bench = {
  name: 'proxy-throughput',
  title: 'Registry proxy throughput vs the CNCF registry (cached blob, loopback)',
  async run({ quick, log }: BenchOptions): Promise<BenchRow[]> {
    const blobBytes = quick ? 20_000_000 : 200_000_000;
    const runs = quick ? 1 : 3;
    const dir = scratchDir('proxy-throughput');
    const logFile = join(dir.dir, 'load.log');
    const registry = await startRegistry();
    let proxy: Awaited<ReturnType<typeof startProxyProcess>> | undefined;
    try {
      const blob = pseudoRandomBytes(blobBytes, `proxy-throughput:${process.pid}`);
      const digest = await pushBlobBytes(registry.registryUrl, 'bench/blob', blob);
      // Cache-miss probes: one small distinct blob per run, so every probe is a real miss.
      const missBytes = 20_000_000;
      const misses: string[] = [];
      for (let i = 0; i < runs; i++) misses.push(await pushBlobBytes(registry.registryUrl, 'bench/blob', pseudoRandomBytes(missBytes, `proxy-miss:${process.pid}:${i}`)));
      proxy = await startProxyProcess(dir.dir, registry.registryUrl, 'bench');
      const urls = {
        registry: (d: string) => `${registry.registryUrl}/v2/bench/blob/blobs/${d}`,
        // On the proxy, ALIAS/REPO: alias `bench` mirrors the registry, whose repository is bench/blob.
        proxy: (d: string) => `${proxy!.url}/v2/bench/bench/blob/blobs/${d}`,
      };

      const ttfb = { proxy: [] as number[], registry: [] as number[] };
      for (const d of misses) {
        ttfb.proxy.push((await download(urls.proxy(d), 1, logFile)).ttfbMs[0]);
        ttfb.registry.push((await download(urls.registry(d), 1, logFile)).ttfbMs[0]);
      }
      log(`proxy-throughput: TTFB on a miss ${ttfb.proxy.map((t) => t.toFixed(1)).join(', ')} ms (registry ${ttfb.registry.map((t) => t.toFixed(1)).join(', ')} ms)`);

      // Fill the proxy's cache and warm both page caches: what is measured is serving.
      await download(urls.proxy(digest), 1, logFile);
      await download(urls.registry(digest), 1, logFile);

      const mbps = { proxy: { 1: [] as number[], 32: [] as number[] }, registry: { 1: [] as number[], 32: [] as number[] } };
      // CPU seconds per GB served: steadier than wall-clock MB/s on a shared machine (an idea
      // from the registry-proxy owner's proxy-throughput.ts).
      const pids = { proxy: proxy.child.pid, registry: listenerPid(new URL(registry.registryUrl).port) };
      const cpuPerGB = { proxy: [] as number[], registry: [] as number[] };
      let peak32 = 0;
      for (let i = 0; i < runs; i++) {
        const served = { proxy: { cpu: 0, bytes: 0 }, registry: { cpu: 0, bytes: 0 } };
        const measured = async (target: 'proxy' | 'registry', clients: number): Promise<number> => {
          const pid = pids[target];
          const c0 = pid ? cpuSecondsOf(pid) : 0;
          const out = await download(urls[target](digest), clients, logFile);
          if (pid) served[target].cpu += cpuSecondsOf(pid) - c0;
          served[target].bytes += out.bytes;
          return out.mbPerSecond;
        };
        for (const clients of [1, 32] as const) {
          mbps.registry[clients].push(await measured('registry', clients));
          const sampler = sampleMemory(proxy.child.pid, 50);
          mbps.proxy[clients].push(await measured('proxy', clients));
          if (clients === 32) peak32 = Math.max(peak32, sampler.stop().peakRss);
          else sampler.stop();
          log(`proxy-throughput run ${i + 1}/${runs}, ${clients} client(s): proxy ${mbps.proxy[clients][i].toFixed(0)} MB/s, registry ${mbps.registry[clients][i].toFixed(0)} MB/s`);
        }
        for (const t of ['proxy', 'registry'] as const) cpuPerGB[t].push(served[t].cpu / (served[t].bytes / 1e9));
      }
      const hwm = memoryOf(proxy.child.pid).hwm;
      const size = `${(blobBytes / 1e6).toFixed(0)} MB`;
      return [
        compare('proxy-throughput', `cached ${size} blob, 1 client`, 'MB/s', stat(mbps.proxy[1]), 'CNCF registry', stat(mbps.registry[1]), 'aggregate MB/s; client is a separate process on the same 2 cores'),
        compare('proxy-throughput', `cached ${size} blob, 32 clients`, 'MB/s', stat(mbps.proxy[32]), 'CNCF registry', stat(mbps.registry[32]), 'aggregate MB/s over 32 concurrent GETs'),
        ...(pids.registry
          ? [compare('proxy-throughput', 'server CPU per GB served (1 and 32 clients)', 's/GB', stat(cpuPerGB.proxy), 'CNCF registry', stat(cpuPerGB.registry), 'lower is better; utime+stime of each server process over its own downloads')]
          : []),
        compare('proxy-throughput', `time to first byte, cache miss (${(missBytes / 1e6).toFixed(0)} MB blob)`, 'ms', stat(ttfb.proxy), 'CNCF registry (direct)', stat(ttfb.registry), 'the proxy streams the upstream fetch to the first client as it arrives'),
        {
          bench: 'proxy-throughput',
          metric: 'proxy RSS peak, 32 clients',
          unit: 'MiB',
          berth: stat([peak32 / MiB]),
          baseline: { name: 'target (issue 3)', value: stat([150]) },
          ratio: peak32 / MiB / 150,
          note: `VmRSS sampled every 50 ms while serving 32 clients, max over ${runs} run(s); VmHWM over the whole bench (cache fill included) ${(hwm / MiB).toFixed(1)} MiB`,
        },
      ];
    } finally {
      await proxy?.stop();
      await registry.stop();
      dir.remove();
    }
  },
};
