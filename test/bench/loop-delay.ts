import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LoopDelay } from './loop-probe.js';
import { benchScript } from './proc.js';

/**
 * The bench side of loop-probe.ts: the environment that loads it into a service (every process of
 * a cluster inherits it), and the read of each process's event-loop delay since the last read.
 */

export type { LoopDelay };

export function loopProbeEnv(dir: string, extra: Record<string, string> = {}): Record<string, string> {
  mkdirSync(dir, { recursive: true });
  return { NODE_OPTIONS: `--import=${pathToFileURL(benchScript('loop-probe.js')).href}`, BERTH_BENCH_LOOP_DIR: dir, ...extra };
}

function current(dir: string, pid: number): string {
  try {
    return readFileSync(join(dir, `${pid}.json`), 'utf8');
  } catch {
    return '';
  }
}

/**
 * Signals every process that loaded the probe (SIGUSR2) and reads what each saw since its last
 * signal; a process that does not answer within 2 s is left out. A process that has not loaded it
 * yet (a worker still starting) is not signalled: SIGUSR2 would end it.
 */
export async function loopDelayOf(pids: number[], dir: string): Promise<LoopDelay[]> {
  const before = new Map(pids.filter((p) => existsSync(join(dir, `${p}.ready`))).map((p) => [p, current(dir, p)]));
  for (const p of pids) {
    try {
      process.kill(p, 'SIGUSR2');
    } catch {
      before.delete(p); // gone (a worker replaced meanwhile)
    }
  }
  const out: LoopDelay[] = [];
  for (const p of before.keys()) {
    for (let i = 0; i < 100 && current(dir, p) === before.get(p); i++) await sleep(20);
    const now = current(dir, p);
    if (now && now !== before.get(p)) out.push(JSON.parse(now) as LoopDelay);
  }
  return out;
}

/** The worst process: the highest p99 and max across a cluster's processes. */
export function worstLoop(xs: LoopDelay[]): { p99: number; max: number } {
  return { p99: Math.max(0, ...xs.map((x) => x.p99)), max: Math.max(0, ...xs.map((x) => x.max)) };
}
