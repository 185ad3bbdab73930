import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/**
 * CPU priority among the processes of `--workers N` (issue 17). Every report and enrollment of the
 * cluster passes through two processes, the primary (the IPC relay) and the writer (the one group
 * commit); with ten HTTP workers runnable on two cores each of those two got about its tenth of a
 * core, and the last wave of a 100,000-device campaign crawled at ~34 devices/s while the writer's
 * report took ~0.1 ms of CPU and ~3.5 ms of wall time (SCALING.md). So the HTTP workers run
 * PRIORITY_STEP nicer than the primary and the writer. Where lowering a niceness is permitted (CAP_SYS_NICE, root)
 * the primary and the writer go below the service's own, so the workers keep theirs against the
 * machine's other processes; where it is not, the workers go above it (raising needs no privilege).
 */

/** How much nicer than the primary and the writer the HTTP workers run. */
export const PRIORITY_STEP = 5;

/** Names the variable that overrides PRIORITY_STEP; 0 runs every process at the service's own niceness (for measuring). */
export const PRIORITY_STEP_ENV = 'BERTH_CLUSTER_PRIORITY_STEP';

/** The step from the environment (PRIORITY_STEP when unset or empty); anything but a whole number from 0 to 39 is refused, by name. */
export function priorityStepOf(env: NodeJS.ProcessEnv = process.env): number {
  const value = env[PRIORITY_STEP_ENV];
  if (value === undefined || value === '') return PRIORITY_STEP;
  if (!/^\d+$/.test(value) || Number(value) > 39) throw new Error(`${PRIORITY_STEP_ENV}="${value}": a whole number from 0 to 39 is expected (the niceness between the HTTP workers and the writer)`);
  return Number(value);
}

/**
 * Sets the niceness of every thread of `pid` (Linux keeps it per thread: V8's and libuv's threads,
 * started before this call, would keep the old one; threads started later inherit the main
 * thread's), or of the process alone where there is no /proc. Returns whether every thread took it;
 * a thread gone meanwhile or a refusal is skipped: priority is an optimisation, never a reason to fail.
 */
export function renice(pid: number, nice: number): boolean {
  let tids: number[];
  try {
    tids = readdirSync(`/proc/${pid}/task`).map(Number).filter((t) => Number.isInteger(t) && t > 0);
  } catch {
    tids = [pid];
  }
  let all = tids.length > 0;
  for (const tid of tids) {
    try {
      setPriority(tid, nice);
    } catch {
      all = false;
    }
  }
  return all;
}

/**
 * Lowers the primary's own niceness by `step` where permitted (the writer and the workers, forked
 * after, inherit it); returns the niceness each HTTP worker is to be set to once it listens: the
 * service's own then, else `step` above it. Null with `step` 0: nothing changes.
 */
export function prioritizeCluster(step: number, pid = process.pid): number | null {
  if (step <= 0) return null;
  const base = getPriority(pid);
  const lowered = Math.max(-20, base - step);
  if (lowered < base && renice(pid, lowered)) return base;
  // Not permitted (or some thread refused): the primary is put back whole, the workers go up instead.
  renice(pid, base);
  return Math.min(19, base + step);
}
