import type { Logger } from '../../common/log.js';
import type { Db } from './open.js';

/** A drizzle write transaction (or a savepoint in one), as `write` hands it out. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

/**
 * Runs `fn` in a write transaction and resolves once it is committed. Writes are serialized in
 * process (a libSQL transaction holds its own connection; two at once would meet SQLITE_BUSY);
 * writes queued meanwhile share the next commit, each in its own savepoint.
 */
/**
 * `first`: ahead of the writes queued, into the next group (the singletons lease's renewal: behind a
 * wave's reports it waited past the lease's ttl, and the lease changed hands under load).
 */
export type Write = <T>(fn: (tx: Tx) => Promise<T>, opts?: { first?: boolean }) => Promise<T>;

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
}

/** At most this many queued writes share one commit. */
const MAX_GROUP = 64;

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
export function createWriteQueue(db: Db, log: Logger, turn?: WriteTurn): WriteQueue {
  const queue: QueuedWrite[] = [];
  let draining = false;
  // Writes run one at a time, so at most one write's hooks are being collected at any moment.
  let hooks: (() => void)[] | null = null;

  /** Commits the writes queued when the turn to write comes (at most MAX_GROUP); `group` receives them. */
  async function commitGroup(group: QueuedWrite[]): Promise<Outcome[] | { failed: unknown; outcomes: Outcome[] }> {
    const outcomes: Outcome[] = [];
    // Taken after the turn, not before: with --workers N the wait for the other worker's commit is
    // when most writes arrive, and each that joins this group is one commit (one fsync, two turn
    // messages) fewer.
    const release = turn ? await turn() : null;
    group.push(...queue.splice(0, MAX_GROUP));
    try {
      await db.transaction(async (tx) => {
        for (const item of group) {
          hooks = item.hooks;
          try {
            const value = group.length === 1 ? await item.fn(tx) : await tx.transaction((sp) => item.fn(sp));
            outcomes.push({ ok: true, value });
          } catch (error) {
            outcomes.push({ ok: false, error });
            if (group.length === 1) throw error;
          } finally {
            hooks = null;
          }
        }
      });
    } catch (failed) {
      return { failed, outcomes };
    } finally {
      release?.();
    }
    return outcomes;
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
    write<T>(fn: (tx: Tx) => Promise<T>, opts?: { first?: boolean }): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const item = { fn, resolve: resolve as (v: unknown) => void, reject, hooks: [] };
        if (opts?.first) queue.unshift(item);
        else queue.push(item);
        if (!draining) {
          draining = true;
          void drain();
        }
      });
    },
    afterCommit(_tx: Tx, fn: () => void): void {
      if (hooks) hooks.push(fn);
      // Not inside write: the caller committed on its own; run soon (long polls re-check the DB anyway).
      else setImmediate(fn);
    },
  };
}
