/**
 * Device polls and reports against `berth control-plane` (own process, fresh embedded database,
 * a throwaway registry for the one release), side by side: each run alternates the worker counts
 * and the builds given, so a change in the shared machine's load falls on all alike (issue 17).
 * Prints per run: answers/s, p50/p99/max, server CPU (each process: a cluster's primary first),
 * server CPU µs per request (the figure that survives a loaded machine best), the load
 * generator's CPU and the server's event-loop delay; `--prof`: the flame summary of each process.
 * Not part of `npm run bench`: a tool to compare builds and worker counts.
 *   node dist/test/bench/cp-ab.js [--devices 10000] [--sample 1000] [--seconds 5] [--runs 2]
 *     [--warmup 1] [--workers 1,2] [--bins OTHER/dist/bin/berth.js,this] [--loads OTHER/dist/test/bench/load.js,this]
 *     [--phases poll,doc,renew,report,poll@2000,report@1000] [--prof]
 * `--loads`: each phase runs once with each load generator, back to back (their CPU per request compared).
 * Phases: `poll` (304 at once), `doc` (200 with the signed document: a woken long poll's answer),
 * `renew` (wait=1 with the current ETag, one connection per enrolled device: a long poll's renewal,
 * 304 after its wait), `report` (202).
 * A phase `kind@rate` is open loop at that rate (256 in flight at most), else 64 connections back to back.
 * `hold@N`: N long polls (wait=60, current ETag) held at once, the server's RSS per held poll (held-polls.ts).
 */
import { readdirSync, readFileSync, mkdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { summarize, summaryText, type CpuProfile } from './cpu-profile.js';
import { enrollDevice, mapLimit, reportOf, simDevice } from './devices.js';
import { importFleet } from './fleet.js';
import type { Identity, RequestsJob, RequestsResult } from './load.js';
import { loopDelayOf, loopProbeEnv, worstLoop } from './loop-delay.js';
import { BERTH_BIN, cpuSecondsOf, processTree, runWorker, scratchDir, treeCpuSecondsOf } from './proc.js';
import { holdPolls } from './held-polls.js';
import { ConnectionSpread } from './sockets.js';
import { everyWorkerAnswers, operator, publish, startControlPlaneProcess } from './services.js';
import { startRegistry } from '../rig/registry.js';
import { forgeImage } from '../rig/forge.js';

const { values } = parseArgs({ options: { devices: { type: 'string' }, sample: { type: 'string' }, seconds: { type: 'string' }, workers: { type: 'string' }, runs: { type: 'string' }, phases: { type: 'string' }, prof: { type: 'boolean' }, keep: { type: 'boolean' }, bins: { type: 'string' }, loads: { type: 'string' }, warmup: { type: 'string' } } });
const loads = (values.loads ?? 'this').split(',').map((l) => (l === 'this' ? 'load.js' : l));
const bins = (values.bins ?? '').split(',').filter(Boolean);
const binOf = (b: string): string => (b === 'this' ? BERTH_BIN : b);
const n = Number(values.devices ?? 10000);
const sampleN = Number(values.sample ?? 1000);
const seconds = Number(values.seconds ?? 5);
/** Warm-up before the counted window, s (each run restarts the control plane: every worker verifies its tokens and compiles anew). */
const warmupMs = Number(values.warmup ?? 1) * 1000;
const workers = (values.workers ?? '1').split(',').map(Number);
const runs = Number(values.runs ?? 1);
const phases = (values.phases ?? 'poll,report').split(',');
const dir = scratchDir('cp-ab');
const loopDir = join(dir.dir, 'loop');
const profDir = join(dir.dir, 'prof');
mkdirSync(profDir, { recursive: true });
const env = loopProbeEnv(loopDir, values.prof ? { BERTH_BENCH_CPU_PROF: profDir } : {});
const reg = await startRegistry();
await forgeImage(reg.registry, 'sp/app', '1.0.0', { layers: [{ files: { '/app/VERSION': '1\n' } }] });
const cp = await startControlPlaneProcess(dir.dir, { env, workers: workers[0] });
const fleet = `sp${process.pid}`;
try {
  await importFleet(cp, fleet, 0, n, 10_000);
  const enrolled = await mapLimit(Array.from({ length: sampleN }, (_, i) => i), 16, (i) => enrollDevice(cp.url, simDevice(fleet, i)));
  const rel = await publish(cp, ['name: sp-app', 'version: 1.0.0', 'services:', '  app:', `    image: ${reg.registry}/sp/app:1.0.0`, '    network_mode: none', ''].join('\n'));
  await mapLimit(enrolled, 8, (d) => operator(cp, 'POST', `/v1/devices/${d.serial}/assign`, { json: { manifest: rel } }));
  const polls: Identity[] = await mapLimit(enrolled, 16, async (d) => {
    const res = await fetch(`${cp.url}/v1/device/desired`, { headers: { authorization: `Bearer ${d.token}` } });
    await res.arrayBuffer();
    return { headers: { authorization: `Bearer ${d.token}`, 'if-none-match': res.headers.get('etag') ?? '' } };
  });
  const docs: Identity[] = enrolled.map((d) => ({ headers: { authorization: `Bearer ${d.token}` } }));
  const reports: Identity[] = enrolled.map((d) => ({ headers: { authorization: `Bearer ${d.token}` }, body: JSON.stringify(reportOf({ sequence: 0, desiredSequence: null, running: null, phase: 'running', services: { app: { image: 'bench', status: 'running', health: 'none', restarts: 0 } } })).replace('"sequence":0', '"sequence":__SEQ__') }));
  let seqBase = Date.now();
  const job = (phase: string): RequestsJob => {
    const [kind, rate] = phase.split('@');
    const r = rate ? Number(rate) : undefined;
    const common = { kind: 'requests', method: 'GET', concurrency: r ? 256 : 64, ratePerSecond: r, durationMs: seconds * 1000, warmupMs } as const;
    if (kind === 'poll') return { ...common, url: `${cp.url}/v1/device/desired`, identities: polls, expect: 304 };
    // What a woken long poll answers: the signed document (no If-None-Match, so every poll is a 200).
    if (kind === 'doc') return { ...common, url: `${cp.url}/v1/device/desired`, identities: docs, expect: 200 };
    // A long poll's renewal: every enrolled device waits (wait=1, 0.8-1 s) and is answered 304 unwoken.
    if (kind === 'renew') return { ...common, url: `${cp.url}/v1/device/desired?wait=1`, concurrency: polls.length, ratePerSecond: undefined, identities: polls, expect: 304 };
    return { ...common, method: 'POST', url: `${cp.url}/v1/device/report`, identities: reports, seqStart: (seqBase += 10_000_000), expect: 202 };
  };
  console.log(`ready: ${n} devices, ${sampleN} enrolled; load ${loadavg()[0].toFixed(2)}`);
  for (let i = 0; i < runs; i++) {
    for (const [w, b] of workers.flatMap((w) => (bins.length ? bins : ['']).map((b) => [w, b] as const))) {
      if (workers.length > 1 || bins.length || i > 0) await cp.restart({ workers: w, bin: b ? binOf(b) : undefined });
      // Every worker listening before the load connects (the first answer is worker 1's alone).
      await everyWorkerAnswers(cp.url, w);
      await new Promise((r) => setTimeout(r, 1500));
      for (const [phase, loadScript] of phases.flatMap((p) => loads.map((l) => [p, l] as const))) {
        const pids = processTree(cp.child.pid);
        if (phase.startsWith('hold@')) {
          const h = await holdPolls({ url: cp.url, adminToken: cp.adminToken, pids, identities: polls, count: Number(phase.slice(5)), waitSec: 60 });
          console.log(`${b || ''} w${w} ${phase} run ${i + 1}: server RSS ${h.rssBeforeMiB.toFixed(0)} -> ${h.rssHeldMiB.toFixed(0)} MiB = ${h.kibPerPoll.toFixed(1)} KiB per held poll (all waiting after ${h.seconds.toFixed(1)} s); load ${loadavg()[0].toFixed(2)}`);
          // The polls' sockets closed: the server lets go of them before the next phase.
          await new Promise((r) => setTimeout(r, 2000));
          continue;
        }
        await loopDelayOf(pids, loopDir);
        const cpus0 = pids.map((p) => cpuSecondsOf(p));
        const c0 = treeCpuSecondsOf(cp.child.pid);
        const t0 = performance.now();
        // Which process accepted how many of the load's connections.
        const spread = new ConnectionSpread(pids);
        const r = await runWorker<RequestsResult>(loadScript, job(phase), { logFile: join(dir.dir, 'load.log') }).finally(() => spread.stop());
        const conns = spread.stop();
        const wall = (performance.now() - t0) / 1000;
        const per = pids.map((p, k) => (((cpuSecondsOf(p) - cpus0[k]) / wall) * 100).toFixed(0));
        const cpu = ((treeCpuSecondsOf(cp.child.pid) - c0) / wall) * 100;
        const loops = await loopDelayOf(pids, loopDir);
        const loop = worstLoop(loops);
        console.log(`${b || ''} w${w} ${phase}${loads.length > 1 ? ` load ${loadScript}` : ''} run ${i + 1}: ${r.perSecond.toFixed(0)}/s p50 ${r.p50.toFixed(1)} p99 ${r.p99.toFixed(1)} max ${r.max.toFixed(0)} ms; server ${cpu.toFixed(0)}% [${per.join(' ')}] connections [${conns.join(' ')}], client ${r.clientCpuPercent.toFixed(0)}% (${((r.clientCpuPercent / 100) * (seconds + warmupMs / 1000) * 1e6 / r.answered).toFixed(0)} µs/req); loop p99 ${loop.p99.toFixed(0)} max ${loop.max.toFixed(0)}; ${((cpu / 100) * wall * 1e6 / r.answered).toFixed(0)} µs server CPU/req; failed ${r.failed} ${r.firstError ?? ''}; load ${loadavg()[0].toFixed(2)}`);
        if (values.prof) {
          for (const p of pids) {
            const files = readdirSync(profDir).filter((f) => f.startsWith(`${p}-`)).sort((a, b) => Number(b.split('-')[1].split('.')[0]) - Number(a.split('-')[1].split('.')[0]));
            if (!files[0]) continue;
            const prof = JSON.parse(readFileSync(join(profDir, files[0]), 'utf8')) as CpuProfile;
            console.log(summaryText(`pid ${p} ${phase}`, summarize(prof, 30)));
          }
        }
      }
    }
  }
} finally {
  await cp.stop();
  await reg.stop();
  if (!values.keep) dir.remove();
}
