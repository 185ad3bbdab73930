import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * WAL checkpoints on a thread of their own (issue 17). SQLite's auto-checkpoint runs inside the
 * COMMIT that takes the WAL past 1,000 frames, on the committing thread: it syncs the WAL, copies
 * the frames into the database file and syncs that, and with the embedded driver that thread is the
 * event loop. At 1,000 reports/s (about ten frames a report) that was four to five checkpoints a
 * second of 2-10 ms each with the loop stopped, and 30-87 ms each while another process filled the
 * page cache with writes (`test/bench/control-plane-tail.ts`, SCALING.md): every request in flight
 * waited for them. Here the process's writer connections leave checkpoints to one thread with a
 * connection of its own, which runs a PASSIVE checkpoint (it never takes the write lock, so commits
 * go on meanwhile) when asked after a commit, at most every `gapMs`. Readers and writers are
 * unchanged: SQLite orders a checkpoint against them itself, and a checkpoint never copies a frame
 * it has not synced first, so what a commit made durable stays so. The writer connections keep an
 * auto-checkpoint of their own, at `FALLBACK_FRAMES`, for a thread that fails or falls behind.
 */

/** Frames at which a writer connection still checkpoints by itself (SQLite's default is 1,000). */
export const FALLBACK_FRAMES = 10_000;
/** At most one checkpoint per this many ms: at 1,000 reports/s about 2,000 frames each. */
export const CHECKPOINT_GAP_MS = 200;

/** What one checkpoint did (SQLite's `PRAGMA wal_checkpoint` row), or its error. */
export interface CheckpointResult {
  busy: number;
  /** Frames in the WAL. */
  log: number;
  /** Frames of it now in the database file. */
  checkpointed: number;
  ms: number;
  error?: string;
}

export interface Checkpointer {
  /** A commit happened: checkpoint soon (now, or once the gap since the last one has passed). */
  afterCommit(): void;
  close(): void;
}

// A plain module in a data: URL (as common/delta/zstd-thread.ts): it needs nothing but the driver,
// so it runs the same from dist and from TypeScript tests.
const THREAD_SOURCE = `
import { parentPort, workerData } from 'node:worker_threads';
import { createRequire } from 'node:module';
const Database = createRequire(workerData.require)('libsql');
const db = new Database(workerData.file, { timeout: 0 });
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
parentPort.on('message', (m) => {
  if (m === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  const t0 = performance.now();
  try {
    const r = checkpoint.get();
    parentPort.postMessage({ busy: Number(r.busy), log: Number(r.log), checkpointed: Number(r.checkpointed), ms: performance.now() - t0 });
  } catch (err) {
    parentPort.postMessage({ busy: 0, log: 0, checkpointed: 0, ms: performance.now() - t0, error: String(err && err.message || err) });
  }
});
`;

/**
 * Checkpoints `file` (an embedded database in WAL mode) on a worker thread, started at the first
 * commit (a process that never writes has none). `onResult` sees each checkpoint (tests, logs).
 */
export function startCheckpointer(file: string, opts: { gapMs?: number; onResult?: (r: CheckpointResult) => void } = {}): Checkpointer {
  const gapMs = opts.gapMs ?? CHECKPOINT_GAP_MS;
  let worker: Worker | undefined;
  let running = false;
  let wanted = false;
  let last = -Infinity;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  /** A thread that failed is not started again: the writers' own auto-checkpoint (FALLBACK_FRAMES) does the work. */
  let failed = false;

  const start = (): Worker => {
    const w = new Worker(new URL(`data:text/javascript,${encodeURIComponent(THREAD_SOURCE)}`), { workerData: { file, require: createRequire(import.meta.url).resolve('libsql') } });
    w.unref();
    w.on('message', (r: CheckpointResult) => {
      running = false;
      opts.onResult?.(r);
      if (wanted) run();
    });
    w.on('error', (err) => {
      failed = true;
      running = false;
      worker = undefined;
      opts.onResult?.({ busy: 0, log: 0, checkpointed: 0, ms: 0, error: err.message });
    });
    return w;
  };

  function run(): void {
    if (closed || failed || running) return;
    const wait = last + gapMs - performance.now();
    if (wait > 0) {
      if (!timer) {
        timer = setTimeout(() => {
          timer = undefined;
          run();
        }, wait);
        timer.unref();
      }
      return;
    }
    wanted = false;
    running = true;
    last = performance.now();
    worker ??= start();
    worker.postMessage('checkpoint');
  }

  return {
    afterCommit() {
      wanted = true;
      run();
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      worker?.postMessage('close');
      worker = undefined;
    },
  };
}
