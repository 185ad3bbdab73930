import { createReadStream, readFileSync } from 'node:fs';
import { applyDelta, encodeDelta, openFileSource } from '../../common/delta/index.js';
import { readJob } from './proc.js';

/**
 * Encodes or applies one delta in a process of its own, so that its time and peak memory are its
 * own: `{op: 'encode', base, target, out, level}` or `{op: 'apply', base, delta, out, expect}` on
 * stdin; `{ms, cpuMs (user + system, all threads), maxRssKiB (peak RSS), size?, diffId?}` as the last line of stdout.
 */
type Job = { op: 'encode'; base: string; target: string; out: string; level: number } | { op: 'apply'; base: string; delta: string; out: string; expect: string };

const job = await readJob<Job>();
const base = await openFileSource(job.base);
const t0 = performance.now();
// The whole process's CPU, worker threads included (the encoder's zstd runs on one).
const cpu0 = process.cpuUsage();
let result: { size?: number; diffId?: string };
if (job.op === 'encode') {
  const made = await encodeDelta({ base, target: createReadStream(job.target, { highWaterMark: 1 << 20 }), outPath: job.out, level: job.level });
  result = { size: made.size };
} else {
  const applied = await applyDelta({ base, delta: createReadStream(job.delta, { highWaterMark: 256 << 10 }), outPath: job.out, expectDiffId: job.expect });
  result = { diffId: applied.diffId };
}
const ms = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
await base.close();
// VmHWM, not getrusage's maxRSS: Linux carries maxRSS across fork and exec, so a child of a large
// parent (the bench runner holding a forged pair) would report the parent's size.
const hwm = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
console.log(JSON.stringify({ ms, cpuMs: (cpu.user + cpu.system) / 1000, maxRssKiB: hwm ? Number(hwm[1]) : process.resourceUsage().maxRSS, ...result }));
