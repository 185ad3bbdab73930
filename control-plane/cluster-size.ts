import { availableParallelism } from 'node:os';

/** How many processes `berth control-plane --workers N` runs (cluster.ts starts them). */

export const MAX_WORKERS = 64;
/**
 * The writer process is forked from this many workers up. With two it is a third process on two
 * cores and cost 1.19× the CPU per enrollment, where the two workers' own group commits met no
 * busy failure; at ten it is what removed them. Three to nine are not measured, so they keep it.
 */
export const WRITER_FROM_WORKERS = 3;

/** Whether `--workers N` forks the writer process (cluster-writer.ts). */
export function forksWriter(workers: number): boolean {
  return workers >= WRITER_FROM_WORKERS;
}

/** `--workers`: a whole number from 1 to 64; default the number of cores (1 for an in-memory database). */
export function workersOf(value: string | undefined, db: string): number {
  const inMemory = /(^|:)(:memory:|.*[?&]mode=memory)/.test(db);
  if (value === undefined || value === '') return inMemory ? 1 : Math.min(MAX_WORKERS, availableParallelism());
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > MAX_WORKERS) throw new Error(`--workers "${value}": a whole number of processes from 1 to ${MAX_WORKERS} is expected`);
  const n = Number(value);
  if (n > 1 && inMemory) throw new Error(`--workers ${n}: the processes must share the database, and ${db} lives inside one process (use a file: path or a libSQL server)`);
  return n;
}
