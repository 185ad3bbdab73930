import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pseudoRandomBytes, pushBlobBytes } from '../rig/forge.js';
import { freePort, startRegistry } from '../rig/index.js';

/**
 * Registry proxy throughput, side by side with the CNCF registry in one run: a cached 200 MB blob
 * to 1 and to 32 concurrent clients on loopback, the proxy's peak RSS while serving 32, and what a
 * download cut at 90 % costs when the client resumes with Range.
 */

const BLOB_BYTES = Number(process.env.BERTH_BENCH_BLOB_BYTES ?? 200_000_000);
const ROUNDS = Number(process.env.BERTH_BENCH_ROUNDS ?? 2);

function berthBin(): string {
  const beside = fileURLToPath(new URL('../../bin/berth.js', import.meta.url));
  if (existsSync(beside)) return beside;
  const built = resolve('dist/bin/berth.js');
  if (existsSync(built)) return built;
  throw new Error('proxy-throughput: dist/bin/berth.js not found; run `npm run build` first');
}

/** One GET, body discarded; resolves with the bytes received. `cutAt` destroys the socket there. */
function download(url: string, headers: Record<string, string> = {}, cutAt?: number): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const req = get(url, { headers, agent: false }, (res) => {
      if (res.statusCode !== 200 && res.statusCode !== 206) {
        res.resume();
        reject(new Error(`GET ${url}: HTTP ${res.statusCode}`));
        return;
      }
      let n = 0;
      res.on('data', (chunk: Buffer) => {
        n += chunk.length;
        if (cutAt !== undefined && n >= cutAt) {
          res.destroy();
          resolvePromise(n);
        }
      });
      res.on('end', () => resolvePromise(n));
      res.on('error', (err) => (cutAt !== undefined ? resolvePromise(n) : reject(err)));
    });
    req.on('error', reject);
  });
}

async function throughput(url: string, clients: number): Promise<number> {
  const t0 = performance.now();
  const got = await Promise.all(Array.from({ length: clients }, () => download(url)));
  const seconds = (performance.now() - t0) / 1000;
  for (const n of got) if (n !== BLOB_BYTES) throw new Error(`GET ${url}: ${n} bytes, expected ${BLOB_BYTES}`);
  return (clients * BLOB_BYTES) / seconds / 1e6;
}

function rssMB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/** Runs `work` while sampling a process's RSS; returns the work's result and the peak. */
async function withPeakRss<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; peakMB: number }> {
  let peak = rssMB(pid);
  const timer = setInterval(() => { peak = Math.max(peak, rssMB(pid)); }, 25);
  try {
    const result = await work();
    return { result, peakMB: Math.max(peak, rssMB(pid)) };
  } finally {
    clearInterval(timer);
  }
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The pid listening on a loopback port (the rig's registry does not hand out its pid). */
function listenerPid(port: string): number | null {
  try {
    const out = execFileSync('ss', ['-ltnpH', `sport = :${port}`], { encoding: 'utf8' });
    const m = /pid=(\d+)/.exec(out);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

async function startProxyProcess(upstream: string, cacheDir: string): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const child = spawn(process.execPath, [berthBin(), 'registry-proxy', '--listen', `127.0.0.1:${port}`, '--cache-dir', cacheDir, '--upstream', `bench=${upstream}`, '--anonymous'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, BERTH_LOG_LEVEL: 'error' },
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ok = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
    if (ok) return { child, url };
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`registry proxy did not start on ${url}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function benchProxyThroughput(): Promise<object> {
  const registry = await startRegistry();
  const cacheDir = mkdtempSync(join(tmpdir(), 'berth-bench-proxy-'));
  let proxy: { child: ChildProcess; url: string } | undefined;
  try {
    const digest = await pushBlobBytes(registry.registryUrl, 'bench/blob', pseudoRandomBytes(BLOB_BYTES, 'proxy-throughput'));
    proxy = await startProxyProcess(registry.registryUrl, cacheDir);
    const proxyPid = proxy.child.pid as number;
    const urls = { registry: `${registry.registryUrl}/v2/bench/blob/blobs/${digest}`, proxy: `${proxy.url}/v2/bench/bench/blob/blobs/${digest}` };
    // Fill the proxy's cache and warm both page caches: the bench measures serving, not fetching.
    // The cache miss itself is timed too: the first client is streamed the blob as it arrives.
    const miss0 = performance.now();
    await download(urls.proxy);
    const missMBps = BLOB_BYTES / ((performance.now() - miss0) / 1000) / 1e6;
    await download(urls.registry);
    const idleRss = rssMB(proxyPid);

    const best = { registry: { c1: 0, c32: 0 }, proxy: { c1: 0, c32: 0 } };
    // CPU per byte served is steadier than wall-clock throughput on a shared machine.
    const pids = { registry: listenerPid(new URL(registry.registryUrl).port), proxy: proxyPid };
    const cpu = { registry: 0, proxy: 0 };
    let servedPerTarget = 0;
    let proxyPeak = 0;
    for (let round = 0; round < ROUNDS; round++) {
      for (const target of ['registry', 'proxy'] as const) {
        const pid = pids[target];
        const cpu0 = pid ? cpuSeconds(pid) : 0;
        best[target].c1 = Math.max(best[target].c1, await throughput(urls[target], 1));
        if (target === 'proxy') {
          const { result, peakMB } = await withPeakRss(proxyPid, () => throughput(urls.proxy, 32));
          best.proxy.c32 = Math.max(best.proxy.c32, result);
          proxyPeak = Math.max(proxyPeak, peakMB);
        } else {
          best.registry.c32 = Math.max(best.registry.c32, await throughput(urls.registry, 32));
        }
        if (pid) cpu[target] += cpuSeconds(pid) - cpu0;
      }
      servedPerTarget += 33 * BLOB_BYTES;
    }
    const cpuPerGB = (target: 'registry' | 'proxy') => (pids[target] ? +(cpu[target] / (servedPerTarget / 1e9)).toFixed(2) : null);

    // A cut at 90 %, then a resume from the bytes the client kept.
    const cut = Math.floor(BLOB_BYTES * 0.9);
    const first = await download(urls.proxy, {}, cut);
    const second = await download(urls.proxy, { range: `bytes=${first}-`, 'if-range': `"${digest}"` });
    const wire = first + second;

    const round1 = (n: number) => Math.round(n);
    return {
      blobBytes: BLOB_BYTES,
      rounds: ROUNDS,
      throughputMBps: {
        registry: { clients1: round1(best.registry.c1), clients32: round1(best.registry.c32) },
        proxy: { clients1: round1(best.proxy.c1), clients32: round1(best.proxy.c32) },
      },
      cacheMissMBps: Math.round(missMBps),
      proxyVsRegistry: { clients1: +(best.proxy.c1 / best.registry.c1).toFixed(2), clients32: +(best.proxy.c32 / best.registry.c32).toFixed(2) },
      cpuSecondsPerGB: { registry: cpuPerGB('registry'), proxy: cpuPerGB('proxy') },
      proxyIdleRssMB: Math.round(idleRss),
      proxyPeakRssMB32Clients: Math.round(proxyPeak),
      resumeAfterCutAt90Percent: { bytesOnWire: wire, overheadBytes: wire - BLOB_BYTES, resumedFrom: first },
    };
  } finally {
    if (proxy?.child.pid && proxy.child.exitCode === null) {
      proxy.child.kill('SIGTERM');
      await new Promise((r) => proxy?.child.once('exit', r));
    }
    await registry.stop();
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  benchProxyThroughput().then((r) => console.log(JSON.stringify(r, null, 2)), (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
