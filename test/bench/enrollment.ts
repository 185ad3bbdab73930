/**
 * Enrollment through the real routes (issue 17: ≥ 2,000 devices/s): `berth control-plane` in its
 * own process(es) on a fresh embedded database, N manufacturing records imported, then every
 * device enrolls (challenge, Ed25519 proof, enroll) from load processes of their own
 * (enrollment-worker.ts, a cheap raw HTTP/1.1 client: they share the two cores with the server).
 * Measured with `--workers 1` and `--workers 2`, each on its own fresh database: devices/s, the
 * server's CPU (every process of it, and of their main threads) per enrollment, and the load
 * processes' CPU, over N devices, after a few hundred more enrolled to warm the server up (WARM).
 *   BERTH_BENCH_ENROLL_DEVICES=20000     devices per run (quick: 2,000)
 *   BERTH_BENCH_ENROLL_BASELINE=<berth.js of another build>  the same runs with that build, side by side
 *   BERTH_BENCH_ENROLL_WORKERS=1,2       the --workers values measured (a diagnosis may want one)
 *   BERTH_BENCH_ENROLL_PROF=<dir>        also profiles every server process over the measured window
 *                                        (loop-probe.ts) and prints each one's flame summary
 *   BERTH_BENCH_ENROLL_PROF_CPU=0        with _PROF: the SQL statements' times only, no CPU profiler
 *                                        (which slows the event loop it measures)
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { freePort } from '../rig/index.js';
import { summarize, summaryText, type CpuProfile } from './cpu-profile.js';
import { loopDelayOf, loopProbeEnv } from './loop-delay.js';
import type { SqlStat } from './loop-probe.js';
import { recordsCsv } from './devices.js';
import type { EnrollJob, EnrollResult } from './enrollment-worker.js';
import { BERTH_BIN, benchScriptCommand, mainThreadCpuSecondsOf, processTree, scratchDir, spawnNode, treeCpuSecondsOf, waitReady, type Child } from './proc.js';
import { operator } from './services.js';
import { socketCounts } from './sockets.js';
import { compare, stat, type Bench, type BenchOptions, type BenchRow } from './stats.js';

const TARGET = 2000;
/** Load processes and connections each: 2 × 16 in flight, as fleet-sim enrolls. */
const LOADERS = 2;
const CONNECTIONS = 16;
/** The load processes' niceness (startLoader). */
const LOAD_NICE = 5;
/**
 * Devices each load process enrolls before the measured window, on top of the N measured (at most a
 * tenth of its share): each server process's JIT warm-up, paid once per process, is not an
 * enrollment's cost, and with `--workers 2` each worker pays its own. The --workers poll comparison
 * of the control-plane entry warms up 2 s likewise.
 */
const WARM = 250;
const warmOf = (n: number) => Math.min(WARM, Math.floor(Math.ceil(n / LOADERS) / 10));

/** Each load process's devices: its share of the N measured, after its warm-up's, one range after the other. */
function jobsOf(url: string, fleet: string, n: number): EnrollJob[] {
  const per = Math.ceil(n / LOADERS);
  const warm = warmOf(n);
  let from = 0;
  return Array.from({ length: LOADERS }, (_, l) => {
    const share = Math.max(0, Math.min(per, n - l * per));
    const job = { url, fleet, from, to: from + warm + share, connections: CONNECTIONS, warm };
    from = job.to;
    return job;
  });
}

interface Run {
  perSecond: number;
  serverMsEach: number;
  loadMsEach: number;
  load1: number;
}

async function startServer(bin: string, dir: string, workers: number, env: Record<string, string>): Promise<{ url: string; adminToken: string; child: Child }> {
  mkdirSync(join(dir, 'cp'), { recursive: true });
  const port = await freePort();
  const adminToken = 'berth_' + randomBytes(32).toString('base64url');
  const url = `http://127.0.0.1:${port}`;
  const args = ['control-plane', '--listen', `127.0.0.1:${port}`, '--db', `file:${join(dir, 'cp', 'berth.db')}`, '--data-dir', join(dir, 'cp'), '--workers', String(workers)];
  const child = spawnNode(bin, args, { logFile: join(dir, 'control-plane.log'), env: { ...env, BERTH_ADMIN_TOKEN: adminToken } });
  try {
    await waitReady(child, `${url}/healthz`, 60_000);
  } catch (err) {
    await child.stop();
    throw err;
  }
  return { url, adminToken, child };
}

interface Loader {
  send(line: string): void;
  next(): Promise<Record<string, unknown>>;
  stop(): void;
}

function startLoader(job: EnrollJob): Loader {
  // `nice`: the load shares the cores with the server, which must not be the one that yields.
  const [cmd, args] = benchScriptCommand('enrollment-worker.js', LOAD_NICE);
  const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const err: string[] = [];
  p.stderr.on('data', (b: Buffer) => err.push(b.toString()));
  const lines = createInterface({ input: p.stdout })[Symbol.asyncIterator]();
  p.stdin.write(JSON.stringify(job) + '\n');
  return {
    send: (line) => p.stdin.write(line + '\n'),
    async next() {
      const l = await lines.next();
      if (l.done) throw new Error(`enrollment load process exited ${p.exitCode}: ${err.join('').slice(-1500)}`);
      return JSON.parse(l.value) as Record<string, unknown>;
    },
    stop: () => p.exitCode === null && p.signalCode === null && p.kill('SIGKILL'),
  };
}

/**
 * The fleet's manufacturing records, made once for every run: each run imports them into a fresh
 * database, so the same serials and keys serve them all. Deriving 20,000 keys took 12-18 s a run.
 */
interface Records {
  fleet: string;
  /** CSV chunks of 10,000 records, as the import route takes them. */
  chunks: string[];
}

function recordsOf(n: number): Records {
  const fleet = `enr${process.pid}${randomBytes(3).toString('hex')}`;
  const chunks: string[] = [];
  for (let i = 0; i < n; i += 10_000) chunks.push(recordsCsv(fleet, i, Math.min(n, i + 10_000), () => 'bench=enrollment'));
  return { fleet, chunks };
}

async function measure(bin: string, workers: number, n: number, records: Records, log: (m: string) => void): Promise<Run> {
  const scratch = scratchDir('enrollment');
  const loaders: Loader[] = [];
  let server: Awaited<ReturnType<typeof startServer>> | undefined;
  // Profiling: every server process loads the probe; SIGUSR2 before and after the window cuts its profile.
  const profRoot = process.env.BERTH_BENCH_ENROLL_PROF;
  const profDir = profRoot ? join(profRoot, `${bin === BERTH_BIN ? 'this' : 'baseline'}-w${workers}-${Date.now()}`) : undefined;
  const loopDir = profDir ? join(profDir, 'loop') : '';
  if (profDir) mkdirSync(profDir, { recursive: true });
  try {
    server = await startServer(bin, scratch.dir, workers, profDir ? loopProbeEnv(loopDir, { ...(process.env.BERTH_BENCH_ENROLL_PROF_CPU === '0' ? {} : { BERTH_BENCH_CPU_PROF: profDir }), BERTH_BENCH_SQL_STATS: '1' }) : {});
    const fleet = records.fleet;
    for (const text of records.chunks) await operator(server, 'POST', '/v1/devices/import', { text, type: 'text/csv' });
    const pids = processTree(server.child.pid);
    const sockets0 = socketCounts(pids);
    for (const job of jobsOf(server.url, fleet, n)) loaders.push(startLoader(job));
    for (const l of loaders) if ((await l.next()).event !== 'ready') throw new Error('enrollment load process not ready');
    // The load's connections each process accepted (the primary's stays 0): the kernel decides, the log shows it.
    const accepted = socketCounts(pids).map((c, i) => c - sockets0[i]);
    if (profDir) await loopDelayOf(pids, loopDir);
    const cpu0 = treeCpuSecondsOf(server.child.pid);
    const loops0 = loopsCpu(pids);
    const t0 = performance.now();
    for (const l of loaders) l.send('go');
    const results = (await Promise.all(loaders.map((l) => l.next()))) as unknown as EnrollResult[];
    const seconds = (performance.now() - t0) / 1000;
    const cpu = treeCpuSecondsOf(server.child.pid) - cpu0;
    const loops = loopsCpu(pids).map((c, i) => c - loops0[i]);
    if (profDir) {
      await loopDelayOf(pids, loopDir);
      printProfiles(profDir, loopDir, pids, n, log);
    }
    const enrolled = results.reduce((s, r) => s + r.enrolled, 0);
    const failures = results.flatMap((r) => Object.entries(r.failures));
    if (enrolled !== n || failures.length) throw new Error(`enrolled ${enrolled} of ${n} in the measured window; failures ${JSON.stringify(failures)} (log: ${join(scratch.dir, 'control-plane.log')})`);
    const loadCpu = results.reduce((s, r) => s + r.cpuSeconds, 0);
    const run = { perSecond: n / seconds, serverMsEach: (cpu * 1000) / n, loadMsEach: (loadCpu * 1000) / n, load1: loadavg()[0] };
    log(`enrollment ${bin === BERTH_BIN ? 'this build' : bin}, --workers ${workers} (${pids.length} process(es)): ${n} (after ${LOADERS * warmOf(n)} to warm up) in ${seconds.toFixed(1)} s = ${run.perSecond.toFixed(0)}/s; server ${((cpu / seconds) * 100).toFixed(0)}% of a core, ${run.serverMsEach.toFixed(3)} ms CPU each (${((loops.reduce((a, b) => a + b, 0) * 1000) / n).toFixed(3)} ms on the processes' main threads, the busiest at ${((Math.max(...loops) / seconds) * 100).toFixed(0)}% of a core; connections ${accepted.join(' / ')}); load processes ${run.loadMsEach.toFixed(3)} ms CPU each; load average ${run.load1.toFixed(1)}`);
    return run;
  } finally {
    for (const l of loaders) l.stop();
    await server?.child.stop(10_000);
    scratch.remove();
  }
}

/** Each process's main-thread (event loop) CPU seconds so far: with one worker, what runs out first. */
function loopsCpu(pids: number[]): number[] {
  return pids.map((pid) => {
    try {
      return mainThreadCpuSecondsOf(pid);
    } catch {
      return 0;
    }
  });
}

/** Each process's profile of the measured window (the second it wrote: the first covers the start). */
function printProfiles(dir: string, loopDir: string, pids: number[], n: number, log: (m: string) => void): void {
  for (const pid of pids) {
    const file = readdirSync(dir).find((f) => f === `${pid}-2.cpuprofile`);
    if (file) {
      const s = summarize(JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile, 30);
      log(summaryText(`server process ${pid} (${((s.totalMs / n) * 1000).toFixed(0)} µs sampled per enrollment)`, s));
    }
    if (!existsSync(join(loopDir, `${pid}-sql.json`))) continue;
    const sqls = JSON.parse(readFileSync(join(loopDir, `${pid}-sql.json`), 'utf8')) as SqlStat[];
    log(['SQL statements by time (wall, on the event loop):', ...sqls.slice(0, 15).map((q) => `  ${q.ms.toFixed(0).padStart(6)} ms ${String(q.calls).padStart(7)} calls ${((q.ms / q.calls) * 1000).toFixed(0).padStart(5)} µs  ${q.sql}`)].join('\n'));
  }
}

export const bench: Bench = {
  name: 'enrollment',
  title: 'Enrollment through the routes (challenge + signed proof), --workers 1 and 2',
  async run({ quick, log }: BenchOptions): Promise<BenchRow[]> {
    const n = Number(process.env.BERTH_BENCH_ENROLL_DEVICES ?? (quick ? 2000 : 20_000));
    const baseline = process.env.BERTH_BENCH_ENROLL_BASELINE;
    const rows: BenchRow[] = [];
    const records = recordsOf(n + LOADERS * warmOf(n));
    for (const workers of (process.env.BERTH_BENCH_ENROLL_WORKERS ?? '1,2').split(',').map(Number)) {
      // Alternating with the baseline, so both see the same machine.
      const mine = await measure(BERTH_BIN, workers, n, records, log);
      const old = baseline ? await measure(baseline, workers, n, records, log) : undefined;
      const note = `higher is better; ${n} devices measured, after ${LOADERS * warmOf(n)} more enrolled the same way to warm up each server process's JIT (as the --workers poll comparison warms up 2 s; the baseline alike); ${LOADERS} load processes × ${CONNECTIONS} in flight at nice ${LOAD_NICE} (they share the two cores, and the server must not be the one that yields); server ${mine.serverMsEach.toFixed(2)} ms CPU per enrollment${old ? ` (baseline ${old.serverMsEach.toFixed(2)})` : ''}, load processes ${mine.loadMsEach.toFixed(2)} ms; load average ${mine.load1.toFixed(1)}`;
      const metric = `devices/s through the routes, --workers ${workers}`;
      if (old) rows.push(compare('enrollment', metric, 'devices/s', stat([mine.perSecond]), `the build at ${baseline}`, stat([old.perSecond]), note));
      else rows.push({ bench: 'enrollment', metric, unit: 'devices/s', berth: stat([mine.perSecond]), baseline: { name: 'target (issue 17)', value: stat([TARGET]) }, ratio: mine.perSecond / TARGET, note });
      rows.push({ bench: 'enrollment', metric: `server CPU per enrollment, --workers ${workers}`, unit: 'ms', berth: stat([mine.serverMsEach]), ...(old ? { baseline: { name: 'baseline build', value: stat([old.serverMsEach]) }, ratio: mine.serverMsEach / old.serverMsEach } : {}), note: 'lower is better; every process of the control plane, challenge and enroll together' });
    }
    return rows;
  },
};
