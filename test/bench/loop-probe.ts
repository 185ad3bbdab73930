/**
 * Loaded into a service process by the benches (NODE_OPTIONS=--import, never by the service's own
 * code; Node 20 refuses --cpu-prof in NODE_OPTIONS, so the profiler is driven from here):
 *   BERTH_BENCH_LOOP_DIR: records the event loop's delay (perf_hooks.monitorEventLoopDelay); on
 *     SIGUSR2 writes what it saw since the last signal to <dir>/<pid>.json, then starts over.
 *   BERTH_BENCH_CPU_PROF: also runs the V8 CPU profiler; on SIGUSR2 writes the profile since the
 *     last signal to <that dir>/<pid>-<n>.cpuprofile, then starts a new one.
 *   BERTH_BENCH_SQL_STATS=1: also times every SQLite statement (the embedded driver runs them
 *     synchronously, so wall time is event-loop time); on SIGUSR2 writes the totals by statement
 *     text to <loop dir>/<pid>-sql.json.
 *   BERTH_BENCH_TRACE_MS: also records what happened when (loop-trace.ts: stalls, GC, slow statements,
 *     each COMMIT and its checkpoint, WAL syncs, slow timers), on SIGUSR2 written to <loop dir>/<pid>-trace.json.
 * A bench signals before and after each run, so each run reads its own figures. Every process of a
 * cluster loads it (NODE_OPTIONS is inherited), each writing its own files.
 */
import { writeFileSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startTrace } from './loop-trace.js';

export interface LoopDelay {
  pid: number;
  /** Milliseconds the loop was late beyond the probe's timer (10 ms, or BERTH_BENCH_LOOP_RESOLUTION_MS). */
  p50: number;
  p99: number;
  max: number;
  /** Samples (one per `resolution` ms the loop was free to take one). */
  count: number;
}

function writeAtomic(file: string, text: string): void {
  writeFileSync(file + '.tmp', text);
  renameSync(file + '.tmp', file);
}

export interface SqlStat {
  sql: string;
  calls: number;
  ms: number;
}

const sqlStats = new Map<string, { calls: number; ns: bigint }>();

/** Wraps the embedded driver's statements (the `libsql` package the client is built on) with a timer. */
function timeStatements(): void {
  type Stmt = { run(...a: unknown[]): unknown; all(...a: unknown[]): unknown; get(...a: unknown[]): unknown };
  const Database = createRequire(import.meta.url)('libsql') as { prototype: { prepare(sql: string): Stmt } };
  const prepare = Database.prototype.prepare;
  Database.prototype.prepare = function (this: unknown, sql: string): Stmt {
    const stmt = prepare.call(this, sql);
    const key = sql.replace(/\s+/g, ' ').slice(0, 160);
    for (const m of ['run', 'all', 'get'] as const) {
      const f = stmt[m].bind(stmt);
      stmt[m] = (...a: unknown[]) => {
        const t0 = process.hrtime.bigint();
        try {
          return f(...a);
        } finally {
          const s = sqlStats.get(key) ?? { calls: 0, ns: 0n };
          s.calls++;
          s.ns += process.hrtime.bigint() - t0;
          sqlStats.set(key, s);
        }
      };
    }
    return stmt;
  };
}

const dir = process.env.BERTH_BENCH_LOOP_DIR;
if (dir && process.env.BERTH_BENCH_SQL_STATS) timeStatements();
const profDir = process.env.BERTH_BENCH_CPU_PROF;
if (dir) {
  // Announces that SIGUSR2 is handled here now (before this, it would end the process: Node's default).
  writeFileSync(join(dir, `${process.pid}.ready`), '');
  // 10 ms: a finer timer costs the measured process CPU of its own; stalls worth reporting are longer.
  // BERTH_BENCH_LOOP_RESOLUTION_MS: coarser where the probe's own CPU would weigh in what the bench
  // measures (fleet-sim's server CPU: the 10 ms timer woke each idle process 100 times a second, 0.83 %
  // of a core, twelve processes at 100,000 devices; 0.17 % at 50 ms). A stall of that period or
  // longer always shows; a shorter one only when it spans a tick.
  const RESOLUTION_MS = Number(process.env.BERTH_BENCH_LOOP_RESOLUTION_MS) || 10;
  const h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  // The histogram holds the time between the timer's runs; the delay is what exceeds the timer's own 10 ms.
  const late = (ns: number): number => Math.max(0, ns / 1e6 - RESOLUTION_MS);
  h.enable();
  const traceMs = Number(process.env.BERTH_BENCH_TRACE_MS);
  const trace = traceMs > 0 ? startTrace(traceMs, process.env.BERTH_BENCH_TRACE_DB) : undefined;
  let session: Session | undefined;
  let n = 0;
  if (profDir) {
    session = new Session();
    session.connect();
    session.post('Profiler.enable', () => session?.post('Profiler.start'));
  }
  process.on('SIGUSR2', () => {
    const loop = (): void => {
      const out: LoopDelay = { pid: process.pid, p50: late(h.percentile(50)), p99: late(h.percentile(99)), max: late(h.max), count: h.count };
      if (process.env.BERTH_BENCH_SQL_STATS) {
        const rows: SqlStat[] = [...sqlStats].map(([sql, v]) => ({ sql, calls: v.calls, ms: Number(v.ns) / 1e6 })).sort((a, b) => b.ms - a.ms);
        writeAtomic(join(dir, `${process.pid}-sql.json`), JSON.stringify(rows));
        sqlStats.clear();
      }
      if (trace) writeAtomic(join(dir, `${process.pid}-trace.json`), JSON.stringify(trace.take()));
      // The loop file last: the bench reads it as "done", so the profile is complete by then.
      writeAtomic(join(dir, `${process.pid}.json`), JSON.stringify(out));
      h.reset();
    };
    if (!session || !profDir) return loop();
    const s = session;
    s.post('Profiler.stop', (err, res) => {
      if (!err) writeAtomic(join(profDir, `${process.pid}-${++n}.cpuprofile`), JSON.stringify(res.profile));
      s.post('Profiler.start', () => loop());
    });
  });
}
