/**
 * What a service process did when, for a bench to lay beside its slowest answers (issue 17: one
 * report of 1,000/s answered in 51 ms, one run in three). Loaded by loop-probe.ts when
 * BERTH_BENCH_TRACE_MS is set (the threshold, ms): records, each with its wall-clock start,
 *   - every event-loop stall of at least the threshold (a timer of 10 ms of its own),
 *   - every GC pause of at least 1 ms (perf_hooks 'gc'),
 *   - every SQLite statement of the embedded driver that took at least the threshold (its text),
 *   - every COMMIT (its time, and the WAL frames checkpointed inside it: SQLite's auto-checkpoint
 *     runs in the COMMIT that crosses wal_autocheckpoint, on the committing thread), read from the
 *     wal-index (BERTH_BENCH_TRACE_DB: the database file; its -shm holds nBackfill at byte 96),
 *   - every FileHandle.datasync (the WAL sync of db/writer.ts, on libuv's pool: its wall time),
 *   - every timer callback of at least the threshold (its function's name).
 * Sums of the COMMITs and syncs are kept whatever their time. Diagnostic only: it wraps the driver.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { PerformanceObserver } from 'node:perf_hooks';
import { promisify } from 'node:util';

export interface TraceEvent {
  /** Wall-clock start, ms since the epoch. */
  at: number;
  ms: number;
  kind: 'loop' | 'gc' | 'sql' | 'commit' | 'datasync' | 'timer';
  what?: string;
  /** For a COMMIT: WAL frames checkpointed during it (0: none). */
  checkpointed?: number;
}

export interface TraceSums {
  commits: number;
  commitMs: number;
  commitMaxMs: number;
  checkpoints: number;
  checkpointMs: number;
  checkpointFrames: number;
  syncs: number;
  syncMs: number;
  syncMaxMs: number;
}

export interface Trace {
  pid: number;
  events: TraceEvent[];
  sums: TraceSums;
}

const freshSums = (): TraceSums => ({ commits: 0, commitMs: 0, commitMaxMs: 0, checkpoints: 0, checkpointMs: 0, checkpointFrames: 0, syncs: 0, syncMs: 0, syncMaxMs: 0 });

/** Starts recording; `take()` hands over what was recorded since the last take and starts over. */
export function startTrace(thresholdMs: number, dbFile: string | undefined): { take(): Trace } {
  let events: TraceEvent[] = [];
  let sums = freshSums();
  const note = (e: TraceEvent): void => {
    if (events.length < 20_000) events.push(e);
  };

  // The event loop's stalls, with their times (the histogram of loop-probe.ts has none), the CPU
  // this process used meanwhile (far less than the stall: it waited in a syscall or was not scheduled)
  // and the SQLite statements that ran since the tick before (the sum, and the longest).
  const PERIOD = 10;
  let last = performance.now();
  let cpu = process.cpuUsage();
  let tick = { n: 0, ms: 0, top: 0, what: '' };
  setInterval(() => {
    const t = performance.now();
    const late = t - last - PERIOD;
    const used = process.cpuUsage(cpu);
    if (late >= thresholdMs) {
      const cpuMs = (used.user + used.system) / 1000;
      note({ at: performance.timeOrigin + last + PERIOD, ms: late, kind: 'loop', what: `cpu ${cpuMs.toFixed(0)} ms, sql ${tick.n} for ${tick.ms.toFixed(1)} ms (longest ${tick.top.toFixed(1)}: ${tick.what.slice(0, 60)})` });
    }
    last = t;
    cpu = process.cpuUsage();
    tick = { n: 0, ms: 0, top: 0, what: '' };
  }, PERIOD).unref();

  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.duration >= 1) note({ at: performance.timeOrigin + e.startTime, ms: e.duration, kind: 'gc', what: String((e as { detail?: { kind?: number } }).detail?.kind ?? '') });
    }
  }).observe({ entryTypes: ['gc'] });

  // nBackfill of the wal-index: frames of the WAL already copied into the database file.
  let shm: number | undefined;
  const word = Buffer.alloc(4);
  const backfilled = (): number | undefined => {
    if (!dbFile) return undefined;
    try {
      shm ??= openSync(`${dbFile}-shm`, 'r');
      return readSync(shm, word, 0, 4, 96) === 4 ? word.readUInt32LE(0) : undefined;
    } catch {
      if (shm !== undefined) closeSync(shm);
      shm = undefined;
      return undefined;
    }
  };

  type Stmt = { run(...a: unknown[]): unknown; all(...a: unknown[]): unknown; get(...a: unknown[]): unknown };
  const Database = createRequire(import.meta.url)('libsql') as { prototype: { prepare(sql: string): Stmt; exec(sql: string): void } };
  const timed = <A extends unknown[], R>(sql: string, f: (...a: A) => R) => {
    const isCommit = /^\s*COMMIT\b/i.test(sql);
    const what = sql.replace(/\s+/g, ' ').slice(0, 120);
    return (...a: A): R => {
      const before = isCommit ? backfilled() : undefined;
      const t0 = performance.now();
      try {
        return f(...a);
      } finally {
        const ms = performance.now() - t0;
        const at = performance.timeOrigin + t0;
        tick.n++;
        tick.ms += ms;
        if (ms > tick.top) tick = { ...tick, top: ms, what };
        if (isCommit) {
          const after = backfilled();
          // nBackfill goes back to 0 when a writer restarts the WAL; it grows only by a checkpoint.
          const checkpointed = before !== undefined && after !== undefined && after > before ? after - before : 0;
          sums.commits++;
          sums.commitMs += ms;
          sums.commitMaxMs = Math.max(sums.commitMaxMs, ms);
          if (checkpointed > 0) {
            sums.checkpoints++;
            sums.checkpointMs += ms;
            sums.checkpointFrames += checkpointed;
          }
          if (ms >= thresholdMs || checkpointed > 0) note({ at, ms, kind: 'commit', checkpointed });
        } else if (ms >= thresholdMs) note({ at, ms, kind: 'sql', what });
      }
    };
  };
  const prepare = Database.prototype.prepare;
  Database.prototype.prepare = function (this: unknown, sql: string): Stmt {
    const stmt = prepare.call(this, sql);
    for (const m of ['run', 'all', 'get'] as const) stmt[m] = timed(sql, stmt[m].bind(stmt));
    return stmt;
  };
  const exec = Database.prototype.exec;
  Database.prototype.exec = function (this: unknown, sql: string): void {
    timed(sql, (s: string) => exec.call(this, s))(sql);
  };

  // The FileHandle class is not exported: taken from a handle of this very file.
  void open(new URL(import.meta.url), 'r').then(async (h) => {
    const proto = Object.getPrototypeOf(h) as { datasync(): Promise<void> };
    await h.close();
    const datasync = proto.datasync;
    proto.datasync = async function (this: unknown): Promise<void> {
      const t0 = performance.now();
      try {
        return await datasync.call(this);
      } finally {
        const ms = performance.now() - t0;
        sums.syncs++;
        sums.syncMs += ms;
        sums.syncMaxMs = Math.max(sums.syncMaxMs, ms);
        if (ms >= thresholdMs) note({ at: performance.timeOrigin + t0, ms, kind: 'datasync' });
      }
    };
  });

  // Timer callbacks (the periodic jobs' synchronous parts), by name.
  for (const name of ['setTimeout', 'setInterval'] as const) {
    const orig = globalThis[name] as (fn: (...a: unknown[]) => unknown, ms?: number, ...a: unknown[]) => unknown;
    const wrapped = function (fn: unknown, ms?: number, ...a: unknown[]): unknown {
      if (typeof fn !== 'function') return orig(fn as never, ms, ...a);
      const f = fn as (...a: unknown[]) => unknown;
      return orig(
        function (this: unknown, ...args: unknown[]) {
          const t0 = performance.now();
          try {
            return f.apply(this, args);
          } finally {
            const took = performance.now() - t0;
            if (took >= thresholdMs) note({ at: performance.timeOrigin + t0, ms: took, kind: 'timer', what: f.name || String(f).replace(/\s+/g, ' ').slice(0, 80) });
          }
        },
        ms,
        ...a,
      );
    };
    Object.assign(wrapped, orig);
    const custom = (orig as unknown as Record<symbol, unknown>)[promisify.custom];
    if (custom) (wrapped as unknown as Record<symbol, unknown>)[promisify.custom] = custom;
    (globalThis as Record<string, unknown>)[name] = wrapped;
  }

  return {
    take() {
      const out = { pid: process.pid, events, sums };
      events = [];
      sums = freshSums();
      last = performance.now();
      return out;
    },
  };
}
