/**
 * Where the control plane's time goes (issue 17): `node dist/test/bench/profile.js` starts
 * `berth control-plane` in its own process on a fresh embedded database, imports N device records,
 * then profiles two phases, each in a control-plane process of its own started with
 * `--cpu-prof` and the event-loop probe (loop-probe.ts):
 *   enroll: every device enrolls through the challenge/enroll routes (32 in flight);
 *   report: reports from every device, `--concurrency` in flight, for `--seconds` (load.ts, its own process).
 * Prints the rates, the server's event-loop delay and the flame summary (self time by function and
 * by module). No Docker or registry needed. Not part of `npm run bench`: a tool to find costs.
 *   node dist/test/bench/profile.js [--devices 2000] [--seconds 10] [--concurrency 64] [--only enroll|report]
 */
import { readdirSync, readFileSync, mkdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { summarize, summaryText, type CpuProfile } from './cpu-profile.js';
import { enrollDevice, mapLimit, reportOf, simDevice, type Enrolled } from './devices.js';
import { importFleet } from './fleet.js';
import type { RequestsResult } from './load.js';
import type { SqlStat } from './loop-probe.js';
import { loopDelayOf, loopProbeEnv } from './loop-delay.js';
import { cpuSecondsOf, runWorker, scratchDir } from './proc.js';
import { startControlPlaneProcess, type ControlPlaneProcess } from './services.js';

const { values } = parseArgs({ options: { devices: { type: 'string' }, seconds: { type: 'string' }, concurrency: { type: 'string' }, only: { type: 'string' }, plain: { type: 'boolean' } } });
const n = Number(values.devices ?? 2000);
const seconds = Number(values.seconds ?? 10);
const concurrency = Number(values.concurrency ?? 64);
const only = values.only;
/** --plain: rates, CPU and event-loop delay only (no profiler, no statement timing: their own cost skews a comparison). */
const plain = values.plain === true;

async function profiled(cp: ControlPlaneProcess, dir: string, phase: string, body: () => Promise<{ what: string; count: number }>): Promise<void> {
  const profDir = join(dir, `prof-${phase}`);
  const loopDir = join(dir, `loop-${phase}`);
  mkdirSync(profDir, { recursive: true });
  await cp.restart({ env: loopProbeEnv(loopDir, plain ? { BERTH_BENCH_CPU_PROF: '', BERTH_BENCH_SQL_STATS: '' } : { BERTH_BENCH_CPU_PROF: profDir, BERTH_BENCH_SQL_STATS: '1' }) });
  const pid = cp.child.pid;
  await loopDelayOf([pid], loopDir);
  const cpu0 = cpuSecondsOf(pid);
  const t0 = performance.now();
  const { what, count } = await body();
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuSecondsOf(pid) - cpu0;
  const [loop] = await loopDelayOf([pid], loopDir);
  console.log(`\n== ${phase}: ${what}; server CPU ${((cpu / wall) * 100).toFixed(0)}% of one core, ${((cpu * 1000) / count).toFixed(3)} ms CPU each; event-loop delay p50 ${loop.p50.toFixed(1)} ms, p99 ${loop.p99.toFixed(1)} ms, max ${loop.max.toFixed(1)} ms; load ${loadavg()[0].toFixed(1)}`);
  if (plain) return;
  // The probe wrote the profile of the window between the two signals (n = 2: the first is startup).
  const file = readdirSync(profDir).find((f) => f.endsWith('-2.cpuprofile'));
  if (!file) throw new Error(`no profile written in ${profDir}`);
  const prof = JSON.parse(readFileSync(join(profDir, file), 'utf8')) as CpuProfile;
  const sqls = JSON.parse(readFileSync(join(loopDir, `${pid}-sql.json`), 'utf8')) as SqlStat[];
  console.log(' SQLite statements by time (calls, ms, statement):');
  for (const q of sqls.slice(0, 15)) console.log(`  ${String(q.calls).padStart(7)} ${q.ms.toFixed(0).padStart(7)} ms  ${q.sql}`);
  console.log(summaryText(`${phase} profile (the measured window)`, summarize(prof, 30)));
}

const dir = scratchDir('profile');
const fleet = `prof${process.pid}`;
const cp = await startControlPlaneProcess(dir.dir);
try {
  await importFleet(cp, fleet, 0, n, 10_000);
  let enrolled: Enrolled[] = [];
  await profiled(cp, dir.dir, 'enroll', async () => {
    const t0 = performance.now();
    enrolled = await mapLimit(
      Array.from({ length: n }, (_, i) => i),
      32,
      (i) => enrollDevice(cp.url, simDevice(fleet, i)),
    );
    return { count: n, what: `${n} devices enrolled at ${(n / ((performance.now() - t0) / 1000)).toFixed(0)}/s (client in the same process)` };
  });
  if (only !== 'enroll') {
    await profiled(cp, dir.dir, 'report', async () => {
      const identities = enrolled.map((d) => ({
        headers: { authorization: `Bearer ${d.token}` },
        body: JSON.stringify(reportOf({ sequence: 0, desiredSequence: null, running: null, phase: 'running', services: { app: { image: 'bench', status: 'running', health: 'none', restarts: 0 } } })).replace('"sequence":0', '"sequence":__SEQ__'),
      }));
      const r = await runWorker<RequestsResult>('load.js', { kind: 'requests', url: `${cp.url}/v1/device/report`, method: 'POST', concurrency, durationMs: seconds * 1000, warmupMs: 1000, identities, seqStart: Date.now(), expect: 202 }, { logFile: join(dir.dir, 'load.log') });
      return { count: r.answered, what: `${r.perSecond.toFixed(0)} reports/s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, max ${r.max.toFixed(1)} ms at ${concurrency} in flight (load generator ${r.clientCpuPercent.toFixed(0)}%); ${r.failed} failed${r.firstError ? ` (${r.firstError})` : ''}` };
    });
  }
} finally {
  await cp.stop();
  dir.remove();
}
