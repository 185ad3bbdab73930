/**
 * Where the control plane's write time went in a kept fleet-sim run (issue 17): sums the processes'
 * 'write time' log lines (db/write-queue.ts) from the last campaign wave's assignment to the end.
 *
 *   node dist/test/bench/write-time.js /tmp/berth-bench-fleet-sim-XXXX/control-plane.log [--slices]
 *
 * `--slices`: the window is the last wave's slices instead (executor.ts WAVE_SLICE: its first
 * 'campaign wave assigned' line to its last), and their pace is printed: slices, devices, the gap
 * between slices (median, max) and which process assigned them.
 *
 * Per process and in all: groups committed, writes in them, and the milliseconds spent waiting for
 * the cluster's write turn, taking SQLite's lock (BEGIN), running the writes, committing; failed
 * groups and those failed busy. A line covers the ~10 s before it, so the window starts at most
 * that much early.
 */
import { readFileSync } from 'node:fs';

const FIELDS = ['groups', 'writes', 'turnWaitMs', 'beginMs', 'runMs', 'commitMs', 'failed', 'busy'] as const;
type Sums = Record<(typeof FIELDS)[number], number>;

const file = process.argv[2];
const slices = process.argv.includes('--slices');
if (!file) {
  console.error('usage: write-time.js <control-plane.log> [--slices]');
  process.exit(2);
}
const lines = readFileSync(file, 'utf8')
  .split('\n')
  .filter((l) => l.startsWith('{'))
  .map((l) => JSON.parse(l) as Record<string, unknown>);
const waves = lines.filter((l) => l.msg === 'campaign wave assigned');
const lastWave = waves.length ? Number(waves[waves.length - 1].wave) : -1;
const lastSlices = waves.filter((l) => Number(l.wave) === lastWave);
const from = !waves.length ? 0 : slices ? Number(lastSlices[0].time) : Number(waves[waves.length - 1].time);
const to = slices && waves.length ? Number(lastSlices[lastSlices.length - 1].time) : Infinity;
if (slices && lastSlices.length) {
  const times = lastSlices.map((l) => Number(l.time));
  const gaps = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
  const devices = lastSlices.reduce((a, l) => a + Number(l.devices ?? 0), 0);
  const by = new Map<string, number>();
  for (const l of lastSlices) by.set(`worker ${String(l.worker ?? 0)}`, (by.get(`worker ${String(l.worker ?? 0)}`) ?? 0) + 1);
  console.log(
    `wave ${lastWave + 1}: ${lastSlices.length} slices, ${devices} devices in ${((to - from) / 1000).toFixed(1)} s from the first slice's commit to the last's; gap between slices median ${gaps.length ? (gaps[Math.floor(gaps.length / 2)] / 1000).toFixed(2) : '-'} s, max ${gaps.length ? (gaps[gaps.length - 1] / 1000).toFixed(2) : '-'} s; by ${[...by].map(([w, k]) => `${w} ×${k}`).join(', ')}`,
  );
}
const byProcess = new Map<string, Sums>();
const total = Object.fromEntries(FIELDS.map((f) => [f, 0])) as Sums;
let last = from;
for (const l of lines) {
  if (l.msg !== 'write time' || Number(l.time) < from || Number(l.time) > to + 10_000) continue;
  last = Math.max(last, Number(l.time));
  const key = `worker ${String(l.worker ?? 0)}`;
  const sums = byProcess.get(key) ?? (Object.fromEntries(FIELDS.map((f) => [f, 0])) as Sums);
  for (const f of FIELDS) {
    sums[f] += Number(l[f] ?? 0);
    total[f] += Number(l[f] ?? 0);
  }
  byProcess.set(key, sums);
}
console.log(slices ? `the last wave's slices, with the write-time lines up to 10 s after the last (each covers the ~10 s before it): ${((last - from) / 1000).toFixed(1)} s` : `last wave assigned to the last line: ${((last - from) / 1000).toFixed(1)} s`);
console.table(Object.fromEntries([...[...byProcess].sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true })), ['all', total]]));
const held = total.beginMs + total.runMs + total.commitMs;
console.log(`in all: turn wait ${(total.turnWaitMs / 1000).toFixed(1)} s; holding the turn ${(held / 1000).toFixed(1)} s = BEGIN ${(total.beginMs / 1000).toFixed(1)} + writes ${(total.runMs / 1000).toFixed(1)} + commit ${(total.commitMs / 1000).toFixed(1)}; ${total.writes} writes in ${total.groups} groups (${(total.writes / Math.max(1, total.groups)).toFixed(1)} a group); ${total.failed} groups failed (${total.busy} busy)`);
