import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { summarize, summaryText, type CpuProfile } from './cpu-profile.js';
import { benchRig } from './engine.js';
import { importFleet, startFleetServer } from './fleet.js';
import type { SimJob } from './fleet-sim-worker.js';
import { loopDelayOf, loopProbeEnv, worstLoop } from './loop-delay.js';
import { benchScript, scratchDir, treeCpuSecondsOf } from './proc.js';
import { operator } from './services.js';
import { stat, type Bench, type BenchOptions, type BenchRow } from './stats.js';

/**
 * Fleet-scale simulation: simulated devices (the daemon's control protocol without Docker, in
 * separate worker processes) enroll through the real routes, then a campaign (waves 1 %, 10 %,
 * 100 %, soak 0) rolls a release out to the whole fleet: each device long-polls its desired state,
 * verifies the signed document, and reports downloading, then running. Measured: enrollment rate,
 * campaign wall time (created → completed), the control plane's CPU (all its processes) per 1,000
 * devices, its event-loop delay (loop-probe.ts), and the requests the simulators had to retry.
 */

/** Issue 17: the whole campaign over 100,000 within 150 s, a third of the 4.9 CPU s per 1,000 devices measured at 50,000, enrollment ≥ 2,000/s. */
const TARGET = { campaignSeconds: 150, cpuPer1000: 4.9 / 3, enrollPerSecond: 2000 };
const target = (name: string, value: number) => ({ name, value: stat([value]) });

interface Worker {
  events: AsyncIterator<Record<string, unknown>>;
  stop(): void;
  exited: Promise<number | null>;
}

function startWorker(job: SimJob): Worker {
  const p = spawn(process.execPath, [benchScript('fleet-sim-worker.js')], { stdio: ['pipe', 'pipe', 'pipe'] });
  const err: string[] = [];
  p.stderr.on('data', (b: Buffer) => err.push(b.toString()));
  p.stdin.end(JSON.stringify(job));
  const exited = new Promise<number | null>((resolve) => p.once('exit', (code) => resolve(code)));
  const lines = createInterface({ input: p.stdout })[Symbol.asyncIterator]();
  const events: AsyncIterator<Record<string, unknown>> = {
    async next() {
      const l = await lines.next();
      if (l.done) {
        const code = await exited;
        throw new Error(`simulator worker exited ${code}: ${err.join('').slice(-1500)}`);
      }
      return { done: false, value: JSON.parse(l.value) as Record<string, unknown> };
    },
  };
  return { events, exited, stop: () => p.exitCode === null && p.signalCode === null && p.kill('SIGKILL') };
}

async function expectEvent(w: Worker, name: string): Promise<Record<string, unknown>> {
  const { value } = await w.events.next();
  if (value.event !== name) throw new Error(`simulator: expected ${name}, got ${JSON.stringify(value)}`);
  return value;
}

/** The server's profile of the campaign window (the probe's second one: the first is startup and enrollment). */
function printCampaignProfile(profDir: string, pid: number, log: (m: string) => void): void {
  const file = readdirSync(profDir).find((f) => f === `${pid}-2.cpuprofile`);
  if (!file) return log(`fleet-sim: no campaign profile in ${profDir}`);
  log(summaryText('fleet-sim campaign window, control plane', summarize(JSON.parse(readFileSync(join(profDir, file), 'utf8')) as CpuProfile, 25)));
}

export const bench: Bench = {
  name: 'fleet-sim',
  title: 'Fleet simulation: enrollment and a 3-wave campaign over the whole fleet',
  async run({ quick, log }: BenchOptions): Promise<BenchRow[]> {
    // Issue 17: 100,000 devices, every one enrolled through the routes, in the 25-minute budget of
    // the whole run; smaller fleets only on request (BERTH_BENCH_FLEET_SIZES=10000,50000).
    const sizes = process.env.BERTH_BENCH_FLEET_SIZES ? process.env.BERTH_BENCH_FLEET_SIZES.split(',').map(Number) : quick ? [500, 2000] : [100_000];
    const openPolls = quick ? 200 : 3000;
    const workers = 2;
    const r = await benchRig();
    const dir = scratchDir('fleet-sim');
    const loopDir = join(dir.dir, 'loop');
    // BERTH_BENCH_FLEET_PROF=1: the server also runs the CPU profiler; the campaign window's flame summary is printed.
    const profDir = process.env.BERTH_BENCH_FLEET_PROF ? join(dir.dir, 'prof') : null;
    if (profDir) mkdirSync(profDir, { recursive: true });
    const server = await startFleetServer(dir.dir, r.rig, ['1.0.0'], loopProbeEnv(loopDir, profDir ? { BERTH_BENCH_CPU_PROF: profDir } : {}));
    const rows: BenchRow[] = [];
    const running: Worker[] = [];
    try {
      for (const n of sizes) {
        const fleet = `sim${process.pid}n${n}`;
        await importFleet(server.cp, fleet, 0, n, 10_000, { fleet });
        const pid = server.cp.child.pid;
        const per = Math.ceil(n / workers);
        const cpu0 = treeCpuSecondsOf(pid);
        const t0 = performance.now();
        for (let w = 0; w < workers; w++) {
          running.push(startWorker({ cpUrl: server.cp.url, fleet, from: w * per, to: Math.min(n, (w + 1) * per), enrollConcurrency: 16, concurrency: openPolls, waitSeconds: 5 }));
        }
        for (const w of running) await expectEvent(w, 'enrolled');
        const enrollSeconds = (performance.now() - t0) / 1000;
        const enrollCpu = treeCpuSecondsOf(pid) - cpu0;
        log(`fleet-sim ${n}: enrolled in ${enrollSeconds.toFixed(1)} s (${(n / enrollSeconds).toFixed(0)}/s, server CPU ${((enrollCpu / enrollSeconds) * 100).toFixed(0)}%)`);

        await loopDelayOf(server.cp.pids(), loopDir);
        const cpu1 = treeCpuSecondsOf(pid);
        const t1 = performance.now();
        const created = await operator(server.cp, 'POST', '/v1/campaigns', { json: { name: fleet, manifest: server.releases[0], selector: `fleet=${fleet}`, waves: ['1%', '10%', '100%'], soak: '0', start: true } });
        const done = Promise.all(running.map((w) => expectEvent(w, 'done')));
        // A worker failing while the status loop runs must fail the bench, not crash the runner.
        let workerError: Error | undefined;
        done.catch((err: Error) => (workerError = err));
        let status = '';
        let lastLog = performance.now();
        while (status !== 'completed') {
          const s = await operator(server.cp, 'GET', `/v1/campaigns/${String(created.id)}`);
          status = String(s.status);
          if (workerError) throw workerError;
          if (performance.now() - lastLog > 15_000) {
            lastLog = performance.now();
            log(`fleet-sim ${n}: campaign ${status}, wave ${String(s.currentWave)}, devices ${JSON.stringify(s.devices)} after ${((lastLog - t1) / 1000).toFixed(0)} s`);
          }
          if (['failed', 'aborted', 'paused'].includes(status)) throw new Error(`campaign ${fleet} ${status}: ${JSON.stringify(s).slice(0, 500)}`);
          if (performance.now() - t1 > 600_000) throw new Error(`campaign ${fleet} not completed after 600 s: ${JSON.stringify(s.devices)}`);
          // Once a second: the status read is the bench's own load on the server (every wave's counts and bytes).
          if (status !== 'completed') await sleep(1000);
        }
        const wall = (performance.now() - t1) / 1000;
        const cpu = treeCpuSecondsOf(pid) - cpu1;
        const loop = worstLoop(await loopDelayOf(server.cp.pids(), loopDir));
        if (profDir) printCampaignProfile(profDir, pid, log);
        const results = await done;
        for (const w of running.splice(0)) await w.exited;
        const polls = results.reduce((a, e) => a + Number(e.polls), 0);
        const retries = results.reduce((a, e) => a + Number(e.retries), 0);
        const reasons: Record<string, number> = {};
        for (const e of results) for (const [k, v] of Object.entries(e.retryReasons as Record<string, number>)) reasons[k] = (reasons[k] ?? 0) + v;
        const retryNote = retries ? `; ${retries} requests retried (${Object.entries(reasons).map(([k, v]) => `${k} ×${v}`).join(', ')})` : '';
        log(`fleet-sim ${n}: campaign completed in ${wall.toFixed(1)} s, server CPU ${cpu.toFixed(1)} s (${((cpu / wall) * 100).toFixed(0)}%), ${polls} polls${retryNote}`);
        const size = n.toLocaleString('en');
        const perK = cpu / (n / 1000);
        rows.push(
          { bench: 'fleet-sim', metric: `${size} devices: campaign 1%,10%,100% created → completed`, unit: 's', berth: stat([wall]), baseline: target('target (issue 17, 100,000)', TARGET.campaignSeconds), ratio: wall / TARGET.campaignSeconds, note: `lower is better; one run; ${workers} simulator processes, ≤ ${openPolls} long-polls open each (wait=5 s, in rounds); every device verifies its document and reports downloading then running (${2 * n} reports, ${polls} polls); server CPU ${cpu.toFixed(1)} s = ${((cpu / wall) * 100).toFixed(0)}% of one core; server event-loop delay p99 ${loop.p99.toFixed(0)} ms (max ${loop.max.toFixed(0)} ms)` },
          { bench: 'fleet-sim', metric: `${size} devices: server CPU per 1,000 devices through the campaign`, unit: 's', berth: stat([perK]), baseline: target('target (issue 17: a third of 4.9)', TARGET.cpuPer1000), ratio: perK / TARGET.cpuPer1000, note: `lower is better; utime+stime of the control plane (every process) from campaign created to completed, ÷ devices/1,000` },
          { bench: 'fleet-sim', metric: `${size} devices: requests retried (timeout, reset, 5xx)`, unit: 'requests', berth: stat([retries]), baseline: target('target (issue 17)', 0), note: `lower is better; enrollment and campaign, as the daemon retries${retryNote || ': none'}` },
          { bench: 'fleet-sim', metric: `${size} devices: enrollment through the routes`, unit: 'devices/s', berth: stat([n / enrollSeconds]), baseline: target('target (issue 17)', TARGET.enrollPerSecond), ratio: n / enrollSeconds / TARGET.enrollPerSecond, note: `higher is better; one run; challenge + signed enroll per device, 2 × 16 in flight; server CPU ${((enrollCpu / enrollSeconds) * 100).toFixed(0)}% of one core` },
        );
      }
      return rows;
    } finally {
      for (const w of running) w.stop();
      await server.stop();
      dir.remove();
    }
  },
};
