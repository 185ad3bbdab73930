import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { enrollDevice, mapLimit, reportOf, simDevice, type Enrolled } from './devices.js';
import { benchRig } from './engine.js';
import { importFleet, seedEnrolledDevices, startFleetServer, type FleetServer } from './fleet.js';
import type { Identity, RequestsJob, RequestsResult } from './load.js';
import { cpuSecondsOf, runWorker, scratchDir } from './proc.js';
import { operator } from './services.js';
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
 * this run: the baseline is the issue's target.
 */

const TARGET = { polls: 2000, reports: 1000, p99: 50, campaignSeconds: 5 };
const CONCURRENCY = 64;
/** Open-loop runs: requests in flight at most (a server that falls behind shows as latency, then as a shortfall). */
const OPEN_LOOP_CAP = 256;

function openLoopRow(metric: string, xs: RequestsResult[], rate: number, expect: number): BenchRow {
  const p99 = stat(xs.map((x) => x.p99));
  const achieved = stat(xs.map((x) => x.perSecond)).median;
  const failed = xs.reduce((a, x) => a + x.failed, 0);
  return {
    bench: 'control-plane',
    metric,
    unit: 'ms',
    berth: p99,
    baseline: target('target (issue 4)', TARGET.p99),
    ratio: p99.median / TARGET.p99,
    note: `lower is better; open loop: ${rate}/s scheduled whatever the answers (latency from the scheduled time, ≤ ${OPEN_LOOP_CAP} in flight); ${achieved.toFixed(0)}/s answered ${expect}, p50 ${stat(xs.map((x) => x.p50)).median.toFixed(1)} ms; ${failed} not ${expect}`,
  };
}

function target(name: string, value: number): { name: string; value: Stat } {
  return { name, value: stat([value]) };
}

async function load(job: RequestsJob, logFile: string, cpPid: number): Promise<RequestsResult & { cpuPercent: number }> {
  const cpu0 = cpuSecondsOf(cpPid);
  const t0 = performance.now();
  const out = await runWorker<RequestsResult>('load.js', job, { logFile });
  const cpuPercent = ((cpuSecondsOf(cpPid) - cpu0) / ((performance.now() - t0) / 1000)) * 100;
  if (out.ok === 0) throw new Error(`${job.method} ${job.url}: nothing answered ${job.expect}; first error ${out.firstError}`);
  return { ...out, cpuPercent };
}

/** Enrolls the sample, assigns it the first release, and learns each device's ETag. */
async function prepareSample(server: FleetServer, fleet: string, n: number): Promise<{ dev: Enrolled; etag: string; sequence: number }[]> {
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

export const bench: Bench = {
  name: 'control-plane',
  title: 'Control-plane capacity (polls, reports, campaign) with 10k and 100k devices',
  async run({ quick, log }: BenchOptions): Promise<BenchRow[]> {
    const sizes = quick ? [1000, 5000] : [10_000, 100_000];
    const sampleSize = quick ? 200 : 2000;
    const runs = quick ? 1 : 3;
    const durationMs = quick ? 2000 : 5000;
    const r = await benchRig();
    const dir = scratchDir('cp-capacity');
    const logFile = join(dir.dir, 'load.log');
    const fleet = `cap${process.pid}`;
    const server = await startFleetServer(dir.dir, r.rig, ['1.0.0', '2.0.0']);
    const rows: BenchRow[] = [];
    // Every report run must carry sequences above all earlier ones, or the server would answer
    // 202 {accepted: false} without writing, and the run would measure the cheap path.
    let seqBase = Date.now();
    const nextSeqBase = (): number => (seqBase += 10_000_000);
    try {
      const importSeconds = await importFleet(server.cp, fleet, 0, sampleSize, sampleSize);
      const sample = await prepareSample(server, fleet, sampleSize);
      log(`control-plane: ${sample.length} devices imported (${(sampleSize / importSeconds).toFixed(0)} records/s), enrolled through the routes and assigned ${server.releases[0]}`);
      let imported = sampleSize;
      let seedSeconds = 0;
      for (const size of sizes) {
        await server.cp.child.stop(10_000);
        seedSeconds += await seedEnrolledDevices(server.cp.dbFile, fleet, imported, size);
        imported = size;
        await server.cp.restart();
        log(`control-plane: ${size} enrolled devices in the database (direct insert ${((size - sampleSize) / seedSeconds).toFixed(0)} rows/s); control plane restarted`);
        const polls: Identity[] = sample.map((s) => ({ headers: { authorization: `Bearer ${s.dev.token}`, 'if-none-match': s.etag } }));
        const reports: Identity[] = sample.map((s) => ({
          headers: { authorization: `Bearer ${s.dev.token}` },
          body: JSON.stringify(
            reportOf({ sequence: 0, desiredSequence: s.sequence, running: server.releases[0], phase: 'running', services: { app: { image: 'bench', status: 'running', health: 'none', restarts: 0 } } }),
          ).replace('"sequence":0', '"sequence":__SEQ__'),
        }));
        const res = { polls: [] as (RequestsResult & { cpuPercent: number })[], reports: [] as (RequestsResult & { cpuPercent: number })[] };
        // The issue's targets are rates with a latency bound: offer exactly that rate (open loop) and
        // read p99 there, besides the saturation runs below that find the most the server takes.
        const atTarget = { polls: [] as RequestsResult[], reports: [] as RequestsResult[] };
        for (let i = 0; i < runs; i++) {
          res.polls.push(await load({ kind: 'requests', url: `${server.cp.url}/v1/device/desired`, method: 'GET', concurrency: CONCURRENCY, durationMs, warmupMs: 1000, identities: polls, expect: 304 }, logFile, server.cp.child.pid));
          res.reports.push(
            await load({ kind: 'requests', url: `${server.cp.url}/v1/device/report`, method: 'POST', concurrency: CONCURRENCY, durationMs, warmupMs: 1000, identities: reports, seqStart: nextSeqBase(), expect: 202 }, logFile, server.cp.child.pid),
          );
          atTarget.polls.push(await load({ kind: 'requests', url: `${server.cp.url}/v1/device/desired`, method: 'GET', concurrency: OPEN_LOOP_CAP, ratePerSecond: TARGET.polls, durationMs, warmupMs: 1000, identities: polls, expect: 304 }, logFile, server.cp.child.pid));
          atTarget.reports.push(
            await load({ kind: 'requests', url: `${server.cp.url}/v1/device/report`, method: 'POST', concurrency: OPEN_LOOP_CAP, ratePerSecond: TARGET.reports, durationMs, warmupMs: 1000, identities: reports, seqStart: nextSeqBase(), expect: 202 }, logFile, server.cp.child.pid),
          );
          const p = res.polls[i];
          const q = res.reports[i];
          log(`control-plane ${size} run ${i + 1}/${runs}: polls ${p.perSecond.toFixed(0)}/s p99 ${p.p99.toFixed(1)} ms (server cpu ${p.cpuPercent.toFixed(0)}%, client ${p.clientCpuPercent.toFixed(0)}%); reports ${q.perSecond.toFixed(0)}/s p99 ${q.p99.toFixed(1)} ms (server cpu ${q.cpuPercent.toFixed(0)}%, client ${q.clientCpuPercent.toFixed(0)}%)${p.failed + q.failed ? `; failed ${p.failed}+${q.failed}: ${p.firstError ?? q.firstError}` : ''}`);
        }
        const n = `${size.toLocaleString('en')} devices`;
        const cpu = (xs: { cpuPercent: number }[]) => stat(xs.map((x) => x.cpuPercent)).median.toFixed(0);
        const clientCpu = (xs: RequestsResult[]) => stat(xs.map((x) => x.clientCpuPercent)).median.toFixed(0);
        const failed = (xs: RequestsResult[]) => xs.reduce((a, x) => a + x.failed, 0);
        const pollRate = stat(res.polls.map((x) => x.perSecond));
        const reportRate = stat(res.reports.map((x) => x.perSecond));
        const pollP99 = stat(res.polls.map((x) => x.p99));
        const reportP99 = stat(res.reports.map((x) => x.p99));
        rows.push(
          { bench: 'control-plane', metric: `desired polls answered 304, ${n}`, unit: 'req/s', berth: pollRate, baseline: target('target (issue 4)', TARGET.polls), ratio: pollRate.median / TARGET.polls, note: `higher is better; ${CONCURRENCY} keep-alive connections over ${sampleSize} device tokens, ${durationMs / 1000} s a run; server CPU ${cpu(res.polls)}% of one core (load generator ${clientCpu(res.polls)}%); each poll verifies the device JWT and reads the desired sequence; ${failed(res.polls)} not 304` },
          { bench: 'control-plane', metric: `desired poll p99 latency, ${n}`, unit: 'ms', berth: pollP99, baseline: target('target (issue 4)', TARGET.p99), ratio: pollP99.median / TARGET.p99, note: `lower is better; p50 ${stat(res.polls.map((x) => x.p50)).median.toFixed(1)} ms at ${CONCURRENCY} in flight` },
          { bench: 'control-plane', metric: `reports accepted, ${n}`, unit: 'req/s', berth: reportRate, baseline: target('target (issue 4)', TARGET.reports), ratio: reportRate.median / TARGET.reports, note: `higher is better; each report is one write transaction (twin row, history row, bounded-history delete); server CPU ${cpu(res.reports)}% of one core (load generator ${clientCpu(res.reports)}%); writes are serialized (one libSQL writer); ${failed(res.reports)} not 202` },
          openLoopRow(`desired poll p99 at ${TARGET.polls.toLocaleString('en')}/s offered, ${n}`, atTarget.polls, TARGET.polls, 304),
          openLoopRow(`report p99 at ${TARGET.reports.toLocaleString('en')}/s offered, ${n}`, atTarget.reports, TARGET.reports, 202),
          { bench: 'control-plane', metric: `report p99 latency, ${n}`, unit: 'ms', berth: reportP99, baseline: target('target (issue 4)', TARGET.p99), ratio: reportP99.median / TARGET.p99, note: `lower is better; p50 ${stat(res.reports.map((x) => x.p50)).median.toFixed(1)} ms at ${CONCURRENCY} in flight` },
        );
      }
      const campaign = await timeCampaign(server, server.releases[1]);
      log(`control-plane: campaign over ${imported} devices, first wave (${campaign.firstWave}) assigned in ${campaign.seconds.toFixed(2)} s`);
      rows.push(
        { bench: 'control-plane', metric: `campaign over ${imported.toLocaleString('en')} devices: created, first wave (1% = ${campaign.firstWave}) assigned`, unit: 's', berth: stat([campaign.seconds]), baseline: target('target (issue 4)', TARGET.campaignSeconds), ratio: campaign.seconds / TARGET.campaignSeconds, note: `lower is better; one run (a second campaign over the same devices would conflict); POST with start: true, then status polled every 50 ms. Seeding: ${sampleSize} devices imported (${(sampleSize / importSeconds).toFixed(0)} records/s through the route) and enrolled through the routes, the rest inserted as enrolled rows (${((imported - sampleSize) / seedSeconds).toFixed(0)} rows/s)` },
      );
    } finally {
      await server.stop();
      dir.remove();
    }
    return rows;
  },
};
