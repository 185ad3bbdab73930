import { sql, type SQL } from 'drizzle-orm';
import type { ControlPlaneContext, Tx } from '../context.js';

/**
 * The change feed of desired state (issue 17): every change to a device's desired document writes
 * a `desired_changes` row in its own transaction, and every control plane sharing the database
 * tails the feed once per tick and wakes the long polls of exactly the devices named. A waiting
 * poll costs nothing until its device changes.
 *
 * Why `seq > last` never skips a row: SQLite (and a libSQL server) has one writer at a time, so a
 * row's seq is given out and committed before any later transaction can take the next one, and
 * AUTOINCREMENT never hands a seq out twice, even after the old rows are pruned.
 */

const CHUNK = 500;
/** Rows read per query; a backlog (a wave of 100,000) is read in several, with a turn of the event loop between. */
const BATCH = 5000;
/** Rows older than this are pruned by the lease holder; a tailer that could not read for half of it wakes every poll. */
export const FEED_KEEP_MS = 10 * 60_000;

type NoteCtx = Pick<ControlPlaneContext, 'afterCommit' | 'waiters'>;

/** Feed rows for these devices, in `tx`; their polls in this process wake after commit (others' at their next tick). */
export async function noteDesiredChanges(ctx: NoteCtx, tx: Tx, deviceIds: string[], now: number): Promise<void> {
  if (deviceIds.length === 0) return;
  for (let i = 0; i < deviceIds.length; i += CHUNK) {
    const rows = deviceIds.slice(i, i + CHUNK).map((id) => sql`(${id}, ${now})`);
    await tx.run(sql`INSERT INTO desired_changes (device_id, at) VALUES ${sql.join(rows, sql`, `)}`);
  }
  ctx.afterCommit(tx, () => deviceIds.forEach((id) => ctx.waiters.wake(id)));
}

/**
 * Feed rows for the devices a query selects (one `device_id` column), set-based: a wave of
 * 100,000 devices is one statement. The caller wakes its own process's polls.
 */
export async function noteDesiredChangesOf(tx: Tx, deviceIds: SQL, now: number): Promise<void> {
  await tx.run(sql`INSERT INTO desired_changes (device_id, at) SELECT device_id, ${now} FROM (${deviceIds})`);
}

export interface FeedTailer {
  /** The last seq this process has acted on. */
  readonly position: number;
  /** Reads the feed now (also runs every tick). */
  poll(): Promise<void>;
  stop(): void;
}

type TailCtx = Pick<ControlPlaneContext, 'client' | 'waiters' | 'log'>;

async function maxSeq(ctx: TailCtx): Promise<number> {
  const r = await ctx.client.execute('SELECT coalesce(max(seq), 0) AS m FROM desired_changes');
  return Number(r.rows[0].m);
}

/**
 * Tails the feed every `tickMs`: one primary-key range query when nothing changed. A long poll
 * enters its waiter before it reads its sequence (device-api/routes.ts), so a change committed
 * after that read is in a later batch and wakes it. When no poll waits, a backlog is skipped by
 * jumping to the newest seq. After a failure longer than half of FEED_KEEP_MS the rows it missed
 * may be pruned already, so every waiting poll is woken once (it re-reads one row and waits again).
 */
export function tailDesiredChanges(ctx: TailCtx, opts: { tickMs: number; now?: () => number }): FeedTailer {
  const clock = opts.now ?? Date.now;
  let last: number | null = null;
  let lastOkAt = clock();
  let running: Promise<void> | null = null;
  let stopped = false;

  async function step(): Promise<void> {
    if (last === null || clock() - lastOkAt > FEED_KEEP_MS / 2) {
      const m = await maxSeq(ctx);
      if (last !== null) {
        ctx.log.warn({ position: last, newest: m }, 'change feed not read for minutes: waking every waiting long poll');
        ctx.waiters.wakeAll();
      }
      last = m;
      lastOkAt = clock();
      return;
    }
    let pos: number = last;
    for (;;) {
      // One row back whatever the batch: a wave of 100,000 costs 20 strings, not 100,000 row objects.
      const r = await ctx.client.execute({
        sql: `SELECT count(*) AS n, max(seq) AS top, group_concat(device_id, char(10)) AS ids
          FROM (SELECT seq, device_id FROM desired_changes WHERE seq > ? ORDER BY seq LIMIT ?)`,
        args: [pos, BATCH],
      });
      const n = Number(r.rows[0].n);
      if (n > 0) {
        for (const id of String(r.rows[0].ids).split('\n')) if (ctx.waiters.has(id)) ctx.waiters.wake(id);
        pos = Number(r.rows[0].top);
      }
      last = pos;
      if (n < BATCH || stopped) break;
      if (ctx.waiters.size === 0) {
        const m = await maxSeq(ctx);
        // Checked after the read: a poll entering later reads its sequence after every change up to m committed.
        if (ctx.waiters.size === 0) {
          last = Math.max(pos, m);
          break;
        }
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    lastOkAt = clock();
  }

  function poll(): Promise<void> {
    running ??= step()
      .catch((err: unknown) => {
        if (!stopped) ctx.log.warn({ err }, 'change feed read failed');
      })
      .finally(() => {
        running = null;
      });
    return running;
  }

  const timer = setInterval(() => void poll(), opts.tickMs);
  timer.unref();
  return {
    get position() {
      return last ?? 0;
    },
    poll,
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}

/**
 * Deletes feed rows older than FEED_KEEP_MS. The cut is found by walking seq from the oldest row
 * (seq and `at` grow together), so the cost is the rows deleted, with no index on `at`.
 */
export async function pruneDesiredChanges(ctx: Pick<ControlPlaneContext, 'write'>, now: number): Promise<number> {
  const before = now - FEED_KEEP_MS;
  return ctx.write(async (tx) => {
    const r = await tx.run(sql`DELETE FROM desired_changes WHERE seq < coalesce(
      (SELECT seq FROM desired_changes WHERE at >= ${before} ORDER BY seq LIMIT 1),
      (SELECT max(seq) + 1 FROM desired_changes))`);
    return r.rowsAffected;
  });
}

/** Prunes the feed once a minute; runs on the lease holder only (lease.ts), though it is safe in many. */
export function startFeedPruner(ctx: Pick<ControlPlaneContext, 'write' | 'log' | 'now'>, everyMs = 60_000): { stop(): void } {
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    pruneDesiredChanges(ctx, ctx.now().getTime())
      .then((n) => n > 0 && ctx.log.debug({ rows: n }, 'change feed pruned'))
      .catch((err: unknown) => ctx.log.warn({ err }, 'change feed prune failed'))
      .finally(() => (busy = false));
  }, everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
