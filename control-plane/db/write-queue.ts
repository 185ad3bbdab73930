import type { Logger } from '../../common/log.js';
import type { Db } from './open.js';
import { isDatabaseBusy } from './busy.js';

/** A drizzle write transaction (or a savepoint in one), as `write` hands it out. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/**
 * Runs `fn` in a write transaction and resolves once it is committed. Writes are serialized in
 * process (a libSQL transaction holds its own connection; two at once would meet SQLITE_BUSY);
 * writes queued meanwhile share the next commit, each in its own savepoint.
 */
export type Write = <T>(fn: (tx: Tx) => Promise<T>) => Promise<T>;

/**
 * Waits for this process's turn to write among processes that share the database and can take
 * turns without SQLite (the workers of `--workers N`, control-plane/cluster.ts); resolves to the
 * release. Without it a process waits for the lock inside the driver, its event loop blocked.
 */
export type WriteTurn = () => Promise<() => void>;

/** Runs `fn` once the current `write` has committed (dropped if it rolls back). */
export type AfterCommit = (tx: Tx, fn: () => void) => void;

export interface WriteQueue {
  write: Write;
  afterCommit: AfterCommit;
  writeAlone: WriteAlone;
}

/** One write transaction of its own, at once: neither behind this process's queue nor the workers' write turn. */
export type WriteAlone = <T>(fn: (tx: Tx) => Promise<T>) => Promise<T>;

/** At most this many queued writes share one commit. */
const MAX_GROUP = 64;
/**
 * With turns to take, a group starts no further write once it has held the turn this long: the rest
 * go first in the next group, after the other workers' turns. A holder's turn is then at most this
 * plus one write, not 64 writes: at 100,000 devices turns of 1-8 s made every other worker's
 * writes (the campaign's reconcile, reports) wait, and passed-over workers' writes fail busy.
 */
export const GROUP_TURN_MS = 250;
/** A group that keeps the write turn longer is logged (who ran what): every other worker's writes wait meanwhile. */
const SLOW_TURN_MS = 1000;

/** How often a process logs where its writes' time went (the 'write time' line), at most. */
const STATS_EVERY_MS = 10_000;

/**
 * Where a process's write time went since its last 'write time' line (issue 17: at 100,000 devices
 * the last wave crawled with ten processes writing): waiting for the cluster's write turn, taking
 * SQLite's lock (BEGIN, retried on timers while another process holds it), running the writes,
 * committing (the fsync); and the groups that failed (SQLITE_BUSY at BEGIN among them).
 */
interface WriteStats {
  since: number;
  groups: number;
  writes: number;
  turnWaitMs: number;
  beginMs: number;
  runMs: number;
  commitMs: number;
  failed: number;
  busy: number;
}

function freshStats(at: number): WriteStats {
  return { since: at, groups: 0, writes: 0, turnWaitMs: 0, beginMs: 0, runMs: 0, commitMs: 0, failed: 0, busy: 0 };
}

/** A write's name for the slow-turn log: its function's name, else the start of its source. */
function whatOf(fn: (tx: Tx) => Promise<unknown>): string {
  return fn.name || String(fn).replace(/\s+/g, ' ').slice(0, 120);
}

interface QueuedWrite {
  fn: (tx: Tx) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  hooks: (() => void)[];
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * The one writer of a database in this process. Group commit: the writes queued while a commit is
 * in flight go together into the next transaction, each in its own savepoint (one failing rolls
 * back only itself), so N writes cost one fsync. Each caller is answered only after the commit
 * that holds its write.
 */
export function createWriteQueue(db: Db, log: Logger, turn?: WriteTurn, opts: { groupTurnMs?: number; now?: () => number } = {}): WriteQueue {
  const groupTurnMs = opts.groupTurnMs ?? GROUP_TURN_MS;
  const now = opts.now ?? Date.now;
  const queue: QueuedWrite[] = [];
  let draining = false;
  // Writes run one at a time, so at most one write's hooks are being collected at any moment.
  let hooks: (() => void)[] | null = null;
  let stats = freshStats(now());
  /** This process's group transaction while it runs (it may hold SQLite's write lock): what writeAlone waits out. */
  let inTransaction: Promise<unknown> | null = null;

  /** Commits the writes queued when the turn to write comes (at most MAX_GROUP); `group` receives them. */
  async function commitGroup(group: QueuedWrite[]): Promise<Outcome[] | { failed: unknown; outcomes: Outcome[] }> {
    const outcomes: Outcome[] = [];
    // Taken after the turn, not before: with --workers N the wait for the other worker's commit is
    // when most writes arrive, and each that joins this group is one commit (one fsync, two turn
    // messages) fewer.
    const asked = now();
    const release = turn ? await turn() : null;
    const got = now();
    group.push(...queue.splice(0, MAX_GROUP));
    let slowest = { ms: -1, what: '' };
    let ran = got;
    let began = null as number | null;
    try {
      const transaction = db.transaction(async (tx) => {
        began = now();
        for (let i = 0; i < group.length; i++) {
          // Held long enough: the writes not begun wait for this worker's next turn, first in line.
          if (turn && i > 0 && now() - got >= groupTurnMs) {
            queue.unshift(...group.splice(i));
            break;
          }
          const item = group[i];
          hooks = item.hooks;
          const t0 = now();
          try {
            const value = group.length === 1 ? await item.fn(tx) : await tx.transaction((sp) => item.fn(sp));
            outcomes.push({ ok: true, value });
          } catch (error) {
            outcomes.push({ ok: false, error });
            if (group.length === 1) throw error;
          } finally {
            hooks = null;
            const ms = now() - t0;
            if (ms > slowest.ms) slowest = { ms, what: whatOf(item.fn) };
          }
        }
        ran = now();
      });
      inTransaction = transaction;
      try {
        await transaction;
      } finally {
        inTransaction = null;
      }
    } catch (failed) {
      stats.failed++;
      if (isDatabaseBusy(failed)) stats.busy++;
      return { failed, outcomes };
    } finally {
      release?.();
      const done = now();
      // A group that failed before its transaction began spent it all taking the lock.
      const b = began ?? done;
      note(group.length, got - asked, b - got, began === null ? 0 : Math.max(0, ran - b), began === null ? 0 : done - Math.max(ran, b), done);
      if (turn && done - got > SLOW_TURN_MS) log.warn({ waitedMs: got - asked, heldMs: done - got, commitMs: done - ran, writes: group.length, slowestMs: slowest.ms, slowest: slowest.what }, 'write turn held long');
    }
    return outcomes;
  }

  function note(writes: number, turnWaitMs: number, beginMs: number, runMs: number, commitMs: number, at: number): void {
    stats.groups++;
    stats.writes += writes;
    stats.turnWaitMs += turnWaitMs;
    stats.beginMs += Math.max(0, beginMs);
    stats.runMs += Math.max(0, runMs);
    stats.commitMs += Math.max(0, commitMs);
    if (at - stats.since < STATS_EVERY_MS) return;
    const { since, ...rest } = stats;
    log.info({ ...rest, windowMs: at - since }, 'write time');
    stats = freshStats(at);
  }

  function answer(item: QueuedWrite, o: Outcome): void {
    if (!o.ok) {
      item.reject(o.error);
      return;
    }
    for (const hook of item.hooks) {
      try {
        hook();
      } catch (err) {
        log.error({ err }, 'after-commit hook failed');
      }
    }
    item.resolve(o.value);
  }

  async function drain(): Promise<void> {
    try {
      while (queue.length > 0) {
        // The embedded driver runs statements synchronously, so nothing else moves while a group
        // commits; yielding to the event loop first lets the requests that arrived meanwhile join.
        await new Promise((resolve) => setImmediate(resolve));
        const group: QueuedWrite[] = [];
        const result = await commitGroup(group);
        if (Array.isArray(result)) {
          group.forEach((item, i) => answer(item, result[i]));
        } else {
          // Rolled back: nothing committed, so no hook runs; each learns its own error if it had one.
          group.forEach((item, i) => {
            const o = result.outcomes[i];
            item.reject(o && !o.ok ? o.error : result.failed);
          });
        }
      }
    } finally {
      draining = false;
    }
  }

  return {
    write<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const item = { fn, resolve: resolve as (v: unknown) => void, reject, hooks: [] };
        queue.push(item);
        if (!draining) {
          draining = true;
          void drain();
        }
      });
    },
    // For the lease's look (lease.ts): a one-row write that must land within the lease's ttl. The
    // queue and the turn can stall behind another worker's busy event loop (at 100,000 devices the
    // lease changed hands every 4-8 s for minutes, SCALING.md); SQLite's own lock, taken on timers
    // on a connection of its own (writer.ts), still orders it among every other write.
    // It waits out this process's own group transaction first: the lease holder's long writes (a
    // wave's assignment, a presence sweep) held SQLite's lock past the renewal's 5 s busy timeout,
    // and the holder lost its lease to its own write (four times in wave 3 at 100,000, SCALING.md).
    async writeAlone(fn) {
      while (inTransaction) await inTransaction.catch(() => undefined);
      return db.transaction(fn);
    },
    afterCommit(_tx: Tx, fn: () => void): void {
      if (hooks) hooks.push(fn);
      // Not inside write: the caller committed on its own; run soon (long polls re-check the DB anyway).
      else setImmediate(fn);
    },
  };
}
