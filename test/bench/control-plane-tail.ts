/**
 * The control-plane bench's open-loop rows run alone, many times, with what the server did in the
 * slowest answers' windows (issue 17: report p99 at 1,000/s offered, 10,000 devices, read 51.3 ms
 * in one run of three). The same fleet as control-plane-capacity.ts: a sample enrolled through the
 * routes and assigned a release, the rest seeded as enrolled rows, `berth control-plane` in its own
 * process with the loop probe and its trace (loop-trace.ts). Not part of `npm run bench`.
 *   node dist/test/bench/control-plane-tail.js [--devices 10000] [--sample 2000] [--runs 10]
 *     [--phases report@1000] [--seconds 5] [--bins OTHER/dist/bin/berth.js,this] [--restart]
 *     [--trace-ms 5] [--settle 0]
 * Phases as in cp-ab.ts (`poll`, `report`: 64 connections back to back; `kind@rate`: open loop);
 * `--phases poll,report,poll@2000,report@1000` is the bench's own order. `--settle S`: S seconds
 * after the restart that follows the seeding before the first run (the first presence sweep, 15 s
 * in, announces the sample online: without it, the first run of the first build alone holds that). With `--bins`, each run
 * restarts the control plane on each build in turn; `--restart` restarts before every run anyway.
 * Per phase: answers/s, p50/p99/max, the server's loop delay, the load generator's own loop delay
 * and how late it sent, the COMMITs (checkpoints among them) and WAL syncs, and for the slowest
 * answers every traced server event that overlaps them.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { prepareSample } from './control-plane-capacity.js';
import { reportOf } from './devices.js';
import { importFleet, seedEnrolledDevices, startFleetServer } from './fleet.js';
import type { Identity, RequestsJob, RequestsResult } from './load.js';
import { loopDelayOf, loopProbeEnv, worstLoop } from './loop-delay.js';
import type { Trace, TraceEvent } from './loop-trace.js';
import { BERTH_BIN, runWorker, scratchDir, treeCpuSecondsOf } from './proc.js';
import { startRegistry } from '../rig/registry.js';

const { values } = parseArgs({ options: { devices: { type: 'string' }, sample: { type: 'string' }, runs: { type: 'string' }, phases: { type: 'string' }, seconds: { type: 'string' }, bins: { type: 'string' }, restart: { type: 'boolean' }, 'trace-ms': { type: 'string' }, keep: { type: 'boolean' }, settle: { type: 'string' } } });
const devices = Number(values.devices ?? 10_000);
const sampleSize = Number(values.sample ?? 2000);
const runs = Number(values.runs ?? 10);
const seconds = Number(values.seconds ?? 5);
const phases = (values.phases ?? 'report@1000').split(',');
const bins = (values.bins ?? '').split(',').filter(Boolean);
const traceMs = values['trace-ms'] ?? '5';

const dir = scratchDir('cp-tail');
const loopDir = join(dir.dir, 'loop');
const dbFile = join(dir.dir, 'cp', 'berth.db');
const reg = await startRegistry();
const server = await startFleetServer(dir.dir, reg, ['1.0.0'], loopProbeEnv(loopDir, { BERTH_BENCH_TRACE_MS: traceMs, BERTH_BENCH_TRACE_DB: dbFile }));
const fleet = `tail${process.pid}`;

function traces(pids: number[]): Trace[] {
  return pids.flatMap((p) => {
    try {
      return [JSON.parse(readFileSync(join(loopDir, `${p}-trace.json`), 'utf8')) as Trace];
    } catch {
      return [];
    }
  });
}

const f1 = (x: number | undefined): string => (x === undefined ? '-' : x.toFixed(1));
const describe = (e: TraceEvent, from: number): string => `${e.kind}${e.checkpointed ? ` (checkpoint ${e.checkpointed} frames)` : ''}${e.what ? ` ${e.what}` : ''} +${(e.at - from).toFixed(0)} ms for ${e.ms.toFixed(1)} ms`;

try {
  await importFleet(server.cp, fleet, 0, sampleSize, sampleSize);
  const sample = await prepareSample(server, fleet, sampleSize);
  await server.cp.child.stop(10_000);
  await seedEnrolledDevices(server.cp.dbFile, fleet, sampleSize, devices);
  await server.cp.restart();
  let started = Date.now();
  await new Promise((r) => setTimeout(r, Number(values.settle ?? 0) * 1000));
  const polls: Identity[] = sample.map((s) => ({ headers: { authorization: `Bearer ${s.dev.token}`, 'if-none-match': s.etag } }));
  const reports: Identity[] = sample.map((s) => ({
    headers: { authorization: `Bearer ${s.dev.token}` },
    body: JSON.stringify(reportOf({ sequence: 0, desiredSequence: s.sequence, running: server.releases[0], phase: 'running', services: { app: { image: 'bench', status: 'running', health: 'none', restarts: 0 } } })).replace('"sequence":0', '"sequence":__SEQ__'),
  }));
  let seqBase = Date.now();
  const job = (phase: string): RequestsJob => {
    const [kind, rate] = phase.split('@');
    const r = rate ? Number(rate) : undefined;
    // As control-plane-capacity.ts: closed runs count 3 s, open ones `--seconds`, after 0.5 s.
    const common = { kind: 'requests', method: 'GET', concurrency: r ? 256 : 64, ratePerSecond: r, durationMs: r ? seconds * 1000 : 3000, warmupMs: 500 } as const;
    if (kind === 'poll') return { ...common, url: `${server.cp.url}/v1/device/desired`, identities: polls, expect: 304 };
    return { ...common, method: 'POST', url: `${server.cp.url}/v1/device/report`, identities: reports, seqStart: (seqBase += 10_000_000), expect: 202 };
  };
  console.log(`ready: ${devices} devices, ${sample.length} enrolled through the routes; load ${loadavg()[0].toFixed(2)}`);
  const over = new Map<string, number[]>();
  for (let i = 0; i < runs; i++) {
    for (const b of bins.length ? bins : ['']) {
      if (bins.length || (values.restart && i > 0)) {
        await server.cp.restart({ bin: b === 'this' || !b ? BERTH_BIN : b });
        started = Date.now();
      }
      for (const phase of phases) {
        const pids = server.cp.pids();
        await loopDelayOf(pids, loopDir);
        const c0 = treeCpuSecondsOf(server.cp.child.pid);
        const t0 = performance.now();
        const r = await runWorker<RequestsResult>('load.js', job(phase), { logFile: join(dir.dir, 'load.log') });
        const wall = (performance.now() - t0) / 1000;
        const cpu = ((treeCpuSecondsOf(server.cp.child.pid) - c0) / wall) * 100;
        const loop = worstLoop(await loopDelayOf(pids, loopDir));
        const tr = traces(pids);
        const s = tr[0]?.sums;
        const name = `${b ? `${b} ` : ''}${phase}`;
        if (phase.includes('@')) over.set(name, [...(over.get(name) ?? []), r.p99]);
        console.log(
          `${name} run ${i + 1}: ${r.perSecond.toFixed(0)}/s p50 ${f1(r.p50)} p99 ${f1(r.p99)} max ${f1(r.max)} ms; server ${cpu.toFixed(0)}%, loop p99/max ${f1(loop.p99)}/${f1(loop.max)}; ` +
            `client loop p99/max ${f1(r.clientLoop?.p99)}/${f1(r.clientLoop?.max)}, sent late max ${f1(r.sendLateMaxMs)} (${r.sendLateOver10 ?? '-'} over 10 ms); ` +
            (s ? `commits ${s.commits} avg ${f1(s.commitMs / Math.max(1, s.commits))} max ${f1(s.commitMaxMs)} ms, checkpoints ${s.checkpoints} (${s.checkpointFrames} frames, ${f1(s.checkpointMs)} ms), syncs ${s.syncs} avg ${f1(s.syncMs / Math.max(1, s.syncs))} max ${f1(s.syncMaxMs)} ms; ` : '') +
            `failed ${r.failed} ${r.firstError ?? ''}; load ${loadavg()[0].toFixed(2)}`,
        );
        const events = tr.flatMap((t) => t.events);
        for (const slow of (r.slowest ?? []).slice(0, phase.includes('@') ? 3 : 1)) {
          const from = slow.at - 50;
          const to = slow.at + slow.ms;
          const near = events.filter((e) => e.at + e.ms >= from && e.at <= to).sort((a, b) => a.at - b.at);
          console.log(`   slow ${slow.ms.toFixed(1)} ms at ${new Date(slow.at).toISOString().slice(11, 23)} (${((slow.at - started) / 1000).toFixed(1)} s after the server's start): ${near.map((e) => describe(e, slow.at)).join('; ') || 'no server event over the threshold'}`);
        }
      }
    }
  }
  for (const [name, p99s] of over) console.log(`${name}: p99 over ${runs} runs: ${p99s.map((x) => x.toFixed(1)).join(' ')} ms; ${p99s.filter((x) => x >= 50).length} at or over 50 ms, ${p99s.filter((x) => x >= 25).length} at or over 25`);
} finally {
  await server.stop();
  await reg.stop();
  if (!values.keep) dir.remove();
}
