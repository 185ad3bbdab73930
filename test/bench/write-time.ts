/**
 * Where the control plane's write time went in a kept fleet-sim run (issue 17): sums the processes'
 * 'write time' log lines (db/write-queue.ts) from the last campaign wave's assignment to the end.
 *
 *   node dist/test/bench/write-time.js /tmp/berth-bench-fleet-sim-XXXX/control-plane.log
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
if (!file) {
  console.error('usage: write-time.js <control-plane.log>');
  process.exit(2);
}
const lines = readFileSync(file, 'utf8')
  .split('\n')
  .filter((l) => l.startsWith('{'))
  .map((l) => JSON.parse(l) as Record<string, unknown>);
const waves = lines.filter((l) => l.msg === 'campaign wave assigned');
const from = waves.length ? Number(waves[waves.length - 1].time) : 0;
const byProcess = new Map<string, Sums>();
const total = Object.fromEntries(FIELDS.map((f) => [f, 0])) as Sums;
let last = from;
for (const l of lines) {
  if (l.msg !== 'write time' || Number(l.time) < from) continue;
  last = Math.max(last, Number(l.time));
  const key = `worker ${String(l.worker ?? 0)}`;
  const sums = byProcess.get(key) ?? (Object.fromEntries(FIELDS.map((f) => [f, 0])) as Sums);
  for (const f of FIELDS) {
    sums[f] += Number(l[f] ?? 0);
    total[f] += Number(l[f] ?? 0);
  }
  byProcess.set(key, sums);
}
console.log(`last wave assigned to the last line: ${((last - from) / 1000).toFixed(1)} s`);
console.table(Object.fromEntries([...[...byProcess].sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true })), ['all', total]]));
const held = total.beginMs + total.runMs + total.commitMs;
console.log(`in all: turn wait ${(total.turnWaitMs / 1000).toFixed(1)} s; holding the turn ${(held / 1000).toFixed(1)} s = BEGIN ${(total.beginMs / 1000).toFixed(1)} + writes ${(total.runMs / 1000).toFixed(1)} + commit ${(total.commitMs / 1000).toFixed(1)}; ${total.writes} writes in ${total.groups} groups (${(total.writes / Math.max(1, total.groups)).toFixed(1)} a group); ${total.failed} groups failed (${total.busy} busy)`);
