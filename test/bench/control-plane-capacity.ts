import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { enrollDevice, mapLimit, reportOf, simDevice, type Enrolled } from './devices.js';
import { benchRig } from './engine.js';
import { importFleet, seedEnrolledDevices, startFleetServer, type FleetServer } from './fleet.js';
import type { Identity, RequestsJob, RequestsResult } from './load.js';
import { loopDelayOf, loopProbeEnv, worstLoop } from './loop-delay.js';
import { cpuSecondsOf, runWorker, scratchDir, treeCpuSecondsOf } from './proc.js';
import { ConnectionSpread } from './sockets.js';
import { everyWorkerAnswers, operator, type ControlPlaneProcess } from './services.js';
import { stat, type Bench, type BenchOptions, type BenchRow, type Stat } from './stats.js';

/**
 * Control-plane capacity with 10,000 and 100,000 devices in the embedded database: desired-state
 * polls answered 304 and reports accepted per second, p50/p99, from a load generator in its own
 * process (keep-alive, 64 connections, fixed duration); and a campaign over every device created
 * and its first wave assigned. The control plane is `berth control-plane` in its own process.
 * A sample of 2,000 devices is imported through the import route and enrolled through the real
 * challenge/enroll routes, then assigned a release; the load spreads over the sample's tokens. The
 * rest of the fleet is inserted as enrolled rows straight into the database file while the control
 * plane is stopped (seedEnrolledDevices), then it is started again. There is no competitor in
 * this run: the baseline is the issue's target. Every run also reads the slowest answer and the
 * server's event-loop delay (loop-probe.ts, loaded into the control plane with NODE_OPTIONS: a
 * 10 ms timer, nothing else). Polls are also measured with each worker count of
 * BERTH_BENCH_CP_WORKERS (default 1,2; `--workers`, issue 17) side by side, alternating run by run.
 *
 * Wall time (the full `npm run bench` must stay under 25 minutes, issue 17): the saturation runs
 * (closed loop) count 3 s after 0.5 s of warm-up, the runs at the issue's rates (open loop) 5 s, so
 * each holds one last-seen flush (every 5 s) for the slowest-answer bound; 3 runs of each at 10,000
 * devices, 2 at 100,000; the --workers runs 2 s unmeasured then 4 s counted, 3 of each count. The
 * 98,000 seeded rows carry random keys (fleet.ts). Until 2026-11-29 13:45 every run counted 5 s after
 * 1 s and the seeding derived real keys: 4 min 50 s in the full run of 11:43, 45 s of it key
 * derivation; until 16:30 the closed runs counted 4 s, 100,000 had 3 runs and --workers 3 s + 5 s
 * (3 min 38 s in the full run of 14:46).
 */

/** Issue 4's rates and p99; issue 17's maximum latency, campaign time and --workers 2 gain. */
const TARGET = { polls: 2000, reports: 1000, p99: 50, max: 250, campaignSeconds: 2, workersGain: 1.4 };
const CONCURRENCY = 64;
/** Open-loop runs: requests in flight at most (a server that falls behind shows as latency, then as a shortfall). */
const OPEN_LOOP_CAP = 256;
/** Counted window of a saturation run (closed loop) and of a run at the issue's rates (open loop), and the warm-up before either. */
const CLOSED_MS = 3000;
const OPEN_MS = 5000;
const WARMUP_MS = 500;
/**
 * Unmeasured polls after each restart of the --workers comparison: every worker of a fresh control
 * plane verifies each device token once (its own cache) and compiles its hot code, which took the
 * first window after a restart to 185 µs of server CPU per poll with one worker and 766 with two
 * (109-173 and 137-160 in the windows after it, load 11-13; SCALING.md). Both counts get the same.
 * The warm-up of the measured load process itself (its connections stay open into the counted 5 s).
 */
const WORKERS_WARMUP_MS = 2000;
const WORKERS_MS = 4000;

function target(name: string, value: number): { name: string; value: Stat } {
  return { name, value: stat([value]) };
}

/**
 * `perProcess`: % of a core of each server process (a cluster's primary first), how evenly the
 * workers shared the load; `connections`: the connections each accepted during the run (sockets.ts).
 */
type Measured = RequestsResult & { cpuPercent: number; perProcess: number[]; connections: number[]; loop: { p99: number; max: number } };

/** One load-generator run; the server's CPU (every process of it) and event-loop delay over the run. */
async function load(job: RequestsJob, logFile: string, cp: ControlPlaneProcess, loopDir: string): Promise<Measured> {
  const pids = cp.pids();
  await loopDelayOf(pids, loopDir);
  const cpu0 = treeCpuSecondsOf(cp.child.pid);
  const each0 = pids.map((p) => cpuSecondsOf(p));
  const t0 = performance.now();
  // Sampled every 500 ms, the fullest sample kept (a loaded machine can start the load process late).
  const spread = new ConnectionSpread(pids);
  const out = await runWorker<RequestsResult>('load.js', job, { logFile }).finally(() => spread.stop());
  const connections = spread.stop();
  const wall = (performance.now() - t0) / 1000;
  const cpuPercent = ((treeCpuSecondsOf(cp.child.pid) - cpu0) / wall) * 100;
  const perProcess = pids.map((p, i) => ((cpuSecondsOf(p) - each0[i]) / wall) * 100);
  const loop = worstLoop(await loopDelayOf(pids, loopDir));
  if (out.ok === 0) throw new Error(`${job.method} ${job.url}: nothing answered ${job.expect}; first error ${out.firstError}`);
  return { ...out, cpuPercent, perProcess, connections, loop };
}

const note = (xs: Measured[]) =>
  `slowest ${stat(xs.map((x) => x.max)).max.toFixed(0)} ms; server event-loop delay p99 ${stat(xs.map((x) => x.loop.p99)).max.toFixed(0)} ms (max ${stat(xs.map((x) => x.loop.max)).max.toFixed(0)} ms)`;

/** p99 at a rate offered on schedule, then the slowest answer of each run against issue 17's bound. */
function openLoopRows(what: string, n: string, xs: Measured[], rate: number, expect: number): BenchRow[] {
  const p99 = stat(xs.map((x) => x.p99));
  const max = stat(xs.map((x) => x.max));
  const achieved = stat(xs.map((x) => x.perSecond)).median;
  const failed = xs.reduce((a, x) => a + x.failed, 0);
  const at = `at ${rate.toLocaleString('en')}/s offered, ${n}`;
  return [
    {
      bench: 'control-plane',
      metric: `${what} p99 ${at}`,
      unit: 'ms',
      berth: p99,
      baseline: target('target (issue 4)', TARGET.p99),
      ratio: p99.median / TARGET.p99,
      note: `lower is better; open loop: ${rate}/s scheduled whatever the answers (latency from the scheduled time, ≤ ${OPEN_LOOP_CAP} in flight); ${achieved.toFixed(0)}/s answered ${expect}, p50 ${stat(xs.map((x) => x.p50)).median.toFixed(1)} ms; ${failed} not ${expect}; the disk's pending writeback flushed (sync) before the counted runs of each size: the proxy entry before it writes hundreds of MB (since 2026-11-30)`,
    },
    {
      bench: 'control-plane',
      metric: `${what} slowest answer ${at}`,
      unit: 'ms',
      berth: max,
      baseline: target('target (issue 17, every run)', TARGET.max),
      ratio: max.max / TARGET.max,
      note: `lower is better; the slowest answer of each run (ratio: the worst run); ${note(xs)}; the load generator sent at most ${stat(xs.map((x) => x.sendLateMaxMs ?? 0)).max.toFixed(0)} ms after schedule (counted in the latency), its own event-loop delay max ${stat(xs.map((x) => x.clientLoop?.max ?? 0)).max.toFixed(0)} ms`,
    },
  ];
}

/** Enrolls the sample, assigns it the first release, and learns each device's ETag. */
export async function prepareSample(server: FleetServer, fleet: string, n: number): Promise<{ dev: Enrolled; etag: string; sequence: number }[]> {
  const enrolled = await mapLimit(
    Array.from({ length: n }, (_, i) => i),
    16,
    (i) => enrollDevice(server.cp.url, simDevice(fleet, i)),
  );
  await mapLimit(enrolled, 8, (d) => operator(server.cp, 'POST', `/v1/devices/${d.serial}/assign`, { json: { manifest: server.releases[0] } }));
  return mapLimit(enrolled, 16, async (dev) => {
    const res = await fetch(`${server.cp.url}/v1/device/desired`, { headers: { authorization: `Bearer ${dev.token}` } });
    await res.arrayBuffer();
    const etag = res.headers.get('etag');
    if (res.status !== 200 || !etag) throw new Error(`desired for ${dev.serial}: ${res.status}`);
    return { dev, etag, sequence: Number(etag.replace(/"/g, '')) };
  });
}

/** Seconds from creating (and starting) a campaign over every device to its first wave assigned. */
async function timeCampaign(server: FleetServer, release: string): Promise<{ seconds: number; firstWave: number }> {
  const t0 = performance.now();
  const created = await operator(server.cp, 'POST', '/v1/campaigns', { json: { name: 'bench-all', manifest: release, selector: '', waves: ['1%', '10%', '100%'], soak: '0', start: true } });
  const id = String(created.id);
  for (;;) {
    const s = (await operator(server.cp, 'GET', `/v1/campaigns/${id}`)) as { waves: { cumulativeDevices: number; devices: { assigned: number; succeeded: number } }[] };
    const w = s.waves[0];
    if (w.devices.assigned + w.devices.succeeded >= w.cumulativeDevices && w.cumulativeDevices > 0) return { seconds: (performance.now() - t0) / 1000, firstWave: w.cumulativeDevices };
    if (performance.now() - t0 > 120_000) throw new Error(`campaign ${id}: first wave not assigned after 120 s: ${JSON.stringify(s.waves[0])}`);
    await sleep(50);
  }
}

/** Worker counts compared side by side (the first is the baseline). */
function workerCounts(): number[] {
  const xs = (process.env.BERTH_BENCH_CP_WORKERS ?? '1,2').split(',').map(Number);
  if (xs.length < 2 || xs.some((x) => !Number.isInteger(x) || x < 1)) throw new Error(`BERTH_BENCH_CP_WORKERS=${process.env.BERTH_BENCH_CP_WORKERS}: want two or more worker counts, e.g. 1,2`);
  return xs;
}

export const bench: Bench = {
  name: 'control-plane',
  title: 'Control-plane capacity (polls, reports, campaign) with 10k and 100k devices',
  async run({ quick, log }: BenchOptions): Promise<BenchRow[]> {
    const sizes = quick ? [1000, 5000] : [10_000, 100_000];
    const sampleSize = quick ? 200 : 2000;
    // 3 runs at 10,000, 2 at 100,000: there the spread of 3 was the narrower (polls 8,760-9,329/s,
    // report p99 at 1,000/s 12.7-15.7 ms, slowest 19.6-26 ms in the run of 14:46), and the runs
    // alternate nothing, so a third run only narrowed an interval already narrow (issue 17's 25 min).
    const runsAt = (size: number) => (quick ? 1 : size === 10_000 ? 3 : 2);
    const closedMs = quick ? 2000 : CLOSED_MS;
    const openMs = quick ? 2000 : OPEN_MS;
    const workers = workerCounts();
    const r = await benchRig();
    const dir = scratchDir('cp-capacity');
    const logFile = join(dir.dir, 'load.log');
    const loopDir = join(dir.dir, 'loop');
    const fleet = `cap${process.pid}`;
    const server = await startFleetServer(dir.dir, r.rig, ['1.0.0', '2.0.0'], loopProbeEnv(loopDir));
    const run = (job: RequestsJob) => load(job, logFile, server.cp, loopDir);
    const rows: BenchRow[] = [];
    // Every report run must carry sequences above all earlier ones, or the server would answer
    // 202 {accepted: false} without writing, and the run would measure the cheap path.
    let seqBase = Date.now();
    const nextSeqBase = (): number => (seqBase += 10_000_000);
    try {
      const importSeconds = await importFleet(server.cp, fleet, 0, sampleSize, sampleSize);
      const sample = await prepareSample(server, fleet, sampleSize);
      log(`control-plane: ${sample.length} devices imported (${(sampleSize / importSeconds).toFixed(0)} records/s), enrolled through the routes and assigned ${server.releases[0]}`);
      const polls: Identity[] = sample.map((s) => ({ headers: { authorization: `Bearer ${s.dev.token}`, 'if-none-match': s.etag } }));
      const reports: Identity[] = sample.map((s) => ({
        headers: { authorization: `Bearer ${s.dev.token}` },
        body: JSON.stringify(
          reportOf({ sequence: 0, desiredSequence: s.sequence, running: server.releases[0], phase: 'running', services: { app: { image: 'bench', status: 'running', health: 'none', restarts: 0 } } }),
        ).replace('"sequence":0', '"sequence":__SEQ__'),
      }));
      const pollJob = (rate?: number): RequestsJob => ({ kind: 'requests', url: `${server.cp.url}/v1/device/desired`, method: 'GET', concurrency: rate ? OPEN_LOOP_CAP : CONCURRENCY, ratePerSecond: rate, durationMs: rate ? openMs : closedMs, warmupMs: WARMUP_MS, identities: polls, expect: 304 });
      const reportJob = (rate?: number): RequestsJob => ({ kind: 'requests', url: `${server.cp.url}/v1/device/report`, method: 'POST', concurrency: rate ? OPEN_LOOP_CAP : CONCURRENCY, ratePerSecond: rate, durationMs: rate ? openMs : closedMs, warmupMs: WARMUP_MS, identities: reports, seqStart: nextSeqBase(), expect: 202 });
      let imported = sampleSize;
      let seedSeconds = 0;
      for (const size of sizes) {
        await server.cp.child.stop(10_000);
        seedSeconds += await seedEnrolledDevices(server.cp.dbFile, fleet, imported, size);
        imported = size;
        await server.cp.restart();
        // The disk settled before the counted runs: every acknowledged report waits for its WAL sync,
        // and an fdatasync on this ext4 disk waits behind whatever else is being written back. The
        // entry before this one (proxy-throughput) writes hundreds of MB and the seeding above tens,
        // whose writeback otherwise lands in the first runs here (with 400 MB written every 2 s
        // beside it, report p99 at 1,000/s read 126-135 ms against 6-16 quiet: SCALING.md).
        const s0 = performance.now();
        execFileSync('sync');
        log(`control-plane: ${size} enrolled devices in the database (direct insert ${((size - sampleSize) / seedSeconds).toFixed(0)} rows/s); control plane restarted; sync ${(performance.now() - s0).toFixed(0)} ms`);
        const res = { polls: [] as Measured[], reports: [] as Measured[] };
        // The issue's targets are rates with a latency bound: offer exactly that rate (open loop) and
        // read p99 there, besides the saturation runs below that find the most the server takes.
        const atTarget = { polls: [] as Measured[], reports: [] as Measured[] };
        const runs = runsAt(size);
        for (let i = 0; i < runs; i++) {
          res.polls.push(await run(pollJob()));
          res.reports.push(await run(reportJob()));
          atTarget.polls.push(await run(pollJob(TARGET.polls)));
          atTarget.reports.push(await run(reportJob(TARGET.reports)));
          const [p, q, tp, tq] = [res.polls[i], res.reports[i], atTarget.polls[i], atTarget.reports[i]];
          log(
            `control-plane ${size} run ${i + 1}/${runs}: polls ${p.perSecond.toFixed(0)}/s p99 ${p.p99.toFixed(1)} ms (server cpu ${p.cpuPercent.toFixed(0)}%, client ${p.clientCpuPercent.toFixed(0)}%); reports ${q.perSecond.toFixed(0)}/s p99 ${q.p99.toFixed(1)} ms (server cpu ${q.cpuPercent.toFixed(0)}%, client ${q.clientCpuPercent.toFixed(0)}%); ` +
              `at the issue's rates p99/max polls ${tp.p99.toFixed(1)}/${tp.max.toFixed(0)} ms, reports ${tq.p99.toFixed(1)}/${tq.max.toFixed(0)} ms, event-loop p99 ${tp.loop.p99.toFixed(0)}/${tq.loop.p99.toFixed(0)} ms${p.failed + q.failed ? `; failed ${p.failed}+${q.failed}: ${p.firstError ?? q.firstError}` : ''}`,
          );
        }
        const n = `${size.toLocaleString('en')} devices`;
        const cpu = (xs: Measured[]) => stat(xs.map((x) => x.cpuPercent)).median.toFixed(0);
        const clientCpu = (xs: Measured[]) => stat(xs.map((x) => x.clientCpuPercent)).median.toFixed(0);
        const failed = (xs: Measured[]) => xs.reduce((a, x) => a + x.failed, 0);
        const pollRate = stat(res.polls.map((x) => x.perSecond));
        const reportRate = stat(res.reports.map((x) => x.perSecond));
        const pollP99 = stat(res.polls.map((x) => x.p99));
        const reportP99 = stat(res.reports.map((x) => x.p99));
        rows.push(
          { bench: 'control-plane', metric: `desired polls answered 304, ${n}`, unit: 'req/s', berth: pollRate, baseline: target('target (issue 4)', TARGET.polls), ratio: pollRate.median / TARGET.polls, note: `higher is better; ${CONCURRENCY} keep-alive connections over ${sampleSize} device tokens, ${closedMs / 1000} s a run; server CPU ${cpu(res.polls)}% of one core (load generator ${clientCpu(res.polls)}%); each poll verifies the device JWT and reads the desired sequence; ${failed(res.polls)} not 304` },
          { bench: 'control-plane', metric: `desired poll p99 latency, ${n}`, unit: 'ms', berth: pollP99, baseline: target('target (issue 4)', TARGET.p99), ratio: pollP99.median / TARGET.p99, note: `lower is better; p50 ${stat(res.polls.map((x) => x.p50)).median.toFixed(1)} ms at ${CONCURRENCY} in flight; ${note(res.polls)}` },
          { bench: 'control-plane', metric: `reports accepted, ${n}`, unit: 'req/s', berth: reportRate, baseline: target('target (issue 4)', TARGET.reports), ratio: reportRate.median / TARGET.reports, note: `higher is better; each accepted report is written in a batch with those that arrived during the previous commit (twin rows, history rows, bounded-history delete) and answered after its commit; server CPU ${cpu(res.reports)}% of one core (load generator ${clientCpu(res.reports)}%); ${failed(res.reports)} not 202` },
          { bench: 'control-plane', metric: `report p99 latency, ${n}`, unit: 'ms', berth: reportP99, baseline: target('target (issue 4)', TARGET.p99), ratio: reportP99.median / TARGET.p99, note: `lower is better; p50 ${stat(res.reports.map((x) => x.p50)).median.toFixed(1)} ms at ${CONCURRENCY} in flight; ${note(res.reports)}` },
          ...openLoopRows('desired poll', n, atTarget.polls, TARGET.polls, 304),
          ...openLoopRows('report', n, atTarget.reports, TARGET.reports, 202),
        );
        if (runs === 2) for (const row of rows.slice(-8)) row.note += `; ${runs} runs (3 until 2026-11-29 16:30, the full bench's 25 min)`;
        if (size === sizes[0] && workers.length) {
          const job: RequestsJob = { ...pollJob(), durationMs: quick ? 2000 : WORKERS_MS, warmupMs: WORKERS_WARMUP_MS };
          rows.push(await compareWorkers(workers, runs, (w) => restartWith(server.cp, w), () => run(job), log, n));
        }
      }
      const campaign = await timeCampaign(server, server.releases[1]);
      log(`control-plane: campaign over ${imported} devices, first wave (${campaign.firstWave}) assigned in ${campaign.seconds.toFixed(2)} s`);
      rows.push({
        bench: 'control-plane',
        metric: `campaign over ${imported.toLocaleString('en')} devices: created, first wave (1% = ${campaign.firstWave}) assigned`,
        unit: 's',
        berth: stat([campaign.seconds]),
        baseline: target('target (issue 17)', TARGET.campaignSeconds),
        ratio: campaign.seconds / TARGET.campaignSeconds,
        note: `lower is better; one run (a second campaign over the same devices would conflict); POST with start: true, then status polled every 50 ms. Seeding: ${sampleSize} devices imported (${(sampleSize / importSeconds).toFixed(0)} records/s through the route) and enrolled through the routes, the rest inserted as enrolled rows (${((imported - sampleSize) / seedSeconds).toFixed(0)} rows/s)`,
      });
    } finally {
      await server.stop();
      dir.remove();
    }
    return rows;
  },
};

/**
 * Each process's CPU (% of a core) and connections in the median run by rate: with kernel accept
 * (cluster.ts) which worker holds a connection is the kernel's choice.
 */
function spread(xs: Measured[]): string {
  const sorted = [...xs].sort((a, b) => a.perSecond - b.perSecond);
  const m = sorted[Math.floor(sorted.length / 2)];
  return m ? `${m.perProcess.map((x) => `${x.toFixed(0)}%`).join(' / ')}; connections ${m.connections.join(' / ')}` : '';
}

/** Restarts the control plane with `workers` workers and waits until every one of them answers. */
async function restartWith(cp: ControlPlaneProcess, workers: number): Promise<void> {
  await cp.restart({ workers });
  await everyWorkerAnswers(cp.url, workers);
}

/**
 * Polls/s (closed loop) with each worker count, alternating run by run so a change in the shared
 * machine's load falls on every count alike; the first count is the baseline. Leaves the control
 * plane on the first count.
 */
async function compareWorkers(counts: number[], runs: number, restart: (workers: number) => Promise<void>, measure: () => Promise<Measured>, log: (m: string) => void, n: string): Promise<BenchRow> {
  const by = new Map<number, Measured[]>(counts.map((w) => [w, []]));
  for (let i = 0; i < runs; i++) {
    for (const w of counts) {
      await restart(w);
      const m = await measure();
      by.get(w)?.push(m);
      log(`control-plane --workers ${w} run ${i + 1}/${runs}: polls ${m.perSecond.toFixed(0)}/s p99 ${m.p99.toFixed(1)} ms (server cpu ${m.cpuPercent.toFixed(0)}% [${m.perProcess.map((x) => x.toFixed(0)).join(' ')}], connections [${m.connections.join(' ')}], client ${m.clientCpuPercent.toFixed(0)}%; load ${loadavg()[0].toFixed(1)})`);
    }
  }
  await restart(counts[0]);
  const [base, ...others] = counts;
  const baseRate = stat((by.get(base) ?? []).map((x) => x.perSecond));
  const last = others[others.length - 1];
  const xs = by.get(last) ?? [];
  const rate = stat(xs.map((x) => x.perSecond));
  const more = others.slice(0, -1).map((w) => `--workers ${w}: ${stat((by.get(w) ?? []).map((x) => x.perSecond)).median.toFixed(0)}/s; `).join('');
  return {
    bench: 'control-plane',
    metric: `desired polls answered 304 with --workers ${last}, ${n}`,
    unit: 'req/s',
    berth: rate,
    baseline: { name: `--workers ${base} (same run)`, value: baseRate },
    ratio: rate.median / baseRate.median,
    note: `higher is better; target ratio ≥ ${TARGET.workersGain} (issue 17); ${more}${CONCURRENCY} keep-alive connections from one load-generator process on the same 2 cores, runs alternating between worker counts, each after a restart and ${WORKERS_WARMUP_MS / 1000} s of unmeasured polls, then ${WORKERS_MS / 1000} s counted (3 s and 5 s until 2026-11-29 16:30) (every worker's token cache filled, its code compiled; the connections opened over the first 0.5 s of it, not in one instant: lean-http.ts, load.ts); server CPU (all its processes) ${stat(xs.map((x) => x.cpuPercent)).median.toFixed(0)}% vs ${stat((by.get(base) ?? []).map((x) => x.cpuPercent)).median.toFixed(0)}% of one core (each process, primary first: ${spread(xs)}); load generator ${stat(xs.map((x) => x.clientCpuPercent)).median.toFixed(0)}% vs ${stat((by.get(base) ?? []).map((x) => x.clientCpuPercent)).median.toFixed(0)}%; p99 ${stat(xs.map((x) => x.p99)).median.toFixed(1)} vs ${stat((by.get(base) ?? []).map((x) => x.p99)).median.toFixed(1)} ms`,
  };
}
