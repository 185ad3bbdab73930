/**
 * `npm run bench`: runs every benchmark in one process, one after the other (the machine is small
 * and shared; parallel benches would measure each other), and writes the table and the raw figures.
 *   node dist/test/bench/run.js [--only name,name] [--quick] [--tag NAME] [--recompute]
 * --quick cuts sizes and runs for a smoke check; published figures come from a full run.
 * Every entry's wall time is printed and recorded (meta.entries), with the total against the
 * 25-minute budget (budget.ts).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem, release, platform } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { killLiveChildren } from './proc.js';
import { holdsLease, rigFromEnv, stopRig } from '../rig/index.js';
import { BUDGET_SECONDS, cpuSecondsSoFar, fmtDuration, timingMarkdown, type EntryTime } from './budget.js';
import { fmt, fmtStat, type Bench, type BenchRow } from './stats.js';

export type { Bench, BenchOptions } from './stats.js';

const BENCHES: Record<string, () => Promise<Bench>> = {
  'update-bytes': async () => (await import('./update-bytes.js')).bench,
  deltas: async () => (await import('./deltas.js')).bench,
  resume: async () => (await import('./resume.js')).bench,
  'proxy-throughput': async () => (await import('./proxy-throughput-bench.js')).bench,
  'control-plane': async () => (await import('./control-plane-capacity.js')).bench,
  'daemon-footprint': async () => (await import('./daemon-footprint.js')).bench,
  converge: async () => (await import('./converge.js')).bench,
  'input-limits': async () => (await import('./input-limits.js')).bench,
  'change-feed': async () => (await import('./change-feed.js')).bench,
  enrollment: async () => (await import('./enrollment.js')).bench,
  // Last since 2026-11-29 16:30: the load it leaves (1-minute average 9-15 for minutes) made the
  // entries after it slower and their figures the machine's (enrollment was rerun alone at 14:46).
  'fleet-sim': async () => (await import('./fleet-sim.js')).bench,
};

function machine() {
  const c = cpus();
  return { cpus: c.length, cpuModel: c[0]?.model ?? 'unknown', memGiB: Math.round(totalmem() / 2 ** 30), os: `${platform()} ${release()}`, node: process.version };
}

export function toMarkdown(rows: BenchRow[], meta: ReturnType<typeof machine> & { date: string }): string {
  const lines = [
    `Measured ${meta.date} on ${meta.cpus} × ${meta.cpuModel}, ${meta.memGiB} GiB, ${meta.os}, Node ${meta.node}. Median (min–max, n runs); ratio = Berth ÷ baseline, same run.`,
    '',
    '| bench | metric | Berth | baseline | baseline value | ratio | note |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    lines.push(`| ${r.bench} | ${r.metric} (${r.unit}) | ${fmtStat(r.berth)} | ${r.baseline?.name ?? '—'} | ${r.baseline ? fmtStat(r.baseline.value) : '—'} | ${r.ratio === undefined ? '—' : fmt(r.ratio)} | ${r.note ?? ''} |`);
  }
  return lines.join('\n') + '\n';
}

async function main(): Promise<void> {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      const n = killLiveChildren();
      console.error(`[bench] ${signal}: killed ${n} child process(es) this run started; containers and temp dirs of the interrupted bench may remain`);
      process.exit(130);
    });
  }
  const { values } = parseArgs({ options: { only: { type: 'string' }, quick: { type: 'boolean' }, tag: { type: 'string' }, recompute: { type: 'boolean' } } });
  // --recompute: cached baselines (baseline-cache.ts) are measured again and replaced.
  if (values.recompute) process.env.BERTH_BENCH_RECOMPUTE = '1';
  // --tag NAME writes results/partial-NAME.*, so engineers running --only side by side do not
  // overwrite each other's partial results.
  if (values.tag !== undefined && !/^[a-z0-9-]{1,40}$/.test(values.tag)) throw new Error(`--tag ${JSON.stringify(values.tag)}: lowercase letters, digits and dashes only`);
  const only = values.only ? values.only.split(',') : Object.keys(BENCHES);
  const unknown = only.filter((n) => !BENCHES[n]);
  if (unknown.length) throw new Error(`unknown bench ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}`);
  const started = Date.now();
  const log = (msg: string) => console.error(`[bench ${((Date.now() - started) / 1000).toFixed(0)}s] ${msg}`);
  const rows: BenchRow[] = [];
  const failures: string[] = [];
  const entries: EntryTime[] = [];
  const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');
  const loadAtStart = load();
  for (const name of only) {
    const t0 = Date.now();
    const cpu0 = cpuSecondsSoFar();
    const bench = await BENCHES[name]();
    log(`${bench.title} … (load ${load()})`);
    let failed = false;
    try {
      const got = await bench.run({ quick: values.quick === true, log });
      rows.push(...got);
      console.log(toMarkdown(got, { ...machine(), date: new Date().toISOString() }).split('\n').slice(4).join('\n'));
    } catch (err) {
      failed = true;
      failures.push(`${name}: ${(err as Error).message}`);
      log(`${name} FAILED: ${(err as Error).stack}`);
    }
    const seconds = (Date.now() - t0) / 1000;
    const cpuSeconds = Math.round(cpuSecondsSoFar() - cpu0);
    entries.push({ bench: name, seconds: Math.round(seconds), cpuSeconds, failed });
    log(`${name} took ${fmtDuration(seconds)}, ${fmtDuration(cpuSeconds)} of CPU in the runner and its ended children (total so far ${fmtDuration((Date.now() - started) / 1000)} of the ${BUDGET_SECONDS / 60} min budget)`);
  }
  // Benches start (or join) the test rig; release it so a run leaves no dockerd behind, unless
  // another process still uses it (stopRig only tears down for the last user).
  if (holdsLease()) await stopRig(rigFromEnv());
  const partial = values.quick === true || values.only !== undefined;
  const meta = { ...machine(), date: new Date().toISOString(), quick: values.quick === true, wallSeconds: Math.round((Date.now() - started) / 1000), load: `${loadAtStart} → ${load()}`, entries };
  const timing = timingMarkdown(entries, meta.wallSeconds, { partial, load: meta.load });
  const md = toMarkdown(rows, meta) + '\nWall time per bench:\n\n' + timing;
  const out = join(dirname(fileURLToPath(import.meta.url)), '../../../test/bench/results');
  await mkdir(out, { recursive: true });
  // Only a full run replaces the published figures; a --quick or --only run must not overwrite them.
  const base = partial ? (values.tag ? `partial-${values.tag}` : 'partial') : 'latest';
  await writeFile(join(out, `${base}.md`), md);
  await writeFile(join(out, `${base}.json`), JSON.stringify({ meta, rows, failures }, null, 2) + '\n');
  console.log('\n' + md);
  log(`done in ${meta.wallSeconds}s; wrote test/bench/results/${base}.{md,json}`);
  if (failures.length) {
    console.error(`failed benches:\n  ${failures.join('\n  ')}`);
    process.exitCode = 1;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
