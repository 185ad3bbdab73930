import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { sql } from 'drizzle-orm';
import type { ControlPlaneContext } from './context.js';
import { isDatabaseBusy } from './db/busy.js';

/**
 * A named lease in the database (issue 17): among the control planes sharing one database exactly
 * one holds it and runs the singletons (campaign driving, the webhook dispatcher, the presence
 * sweeper, the change-feed pruner). The holder renews it every `renewMs`; a holder that dies stops
 * renewing and another process takes the lease over once `expires_at` passes (ttl, 10 s by default),
 * or at once when the holder was a process on this host that is gone (deadOnThisHost).
 * Plain SQL in a write transaction of its own (`writeAlone`: not behind the process's write queue
 * or the workers' write turn): works the same on a `file:` database and a libSQL server.
 *
 * A holder that stalls (a long GC, a frozen VM) may briefly overlap with its successor; what the
 * singletons do is planned from the database inside each write transaction (campaign advances are
 * idempotent steps, webhook deliveries at-least-once), so an overlap costs duplicate work, never a
 * wrong state. The holder also steps down by itself once its last renewal is older than ttl - renewMs,
 * even while that renewal still waits for the write lock (`held` is checked against the clock).
 */

export interface LeaseOptions {
  /** How long a renewal holds the lease; default 10 s. */
  ttlMs?: number;
  /** How often the holder renews and the others look; default 2 s. */
  renewMs?: number;
  /** This process's name in the `leases` table; default `host:pid:random`. */
  holder?: string;
}

export interface Lease {
  readonly name: string;
  /** This process's holder id (as written in `leases.holder`). */
  readonly holder: string;
  /** Whether this process holds the lease now. */
  readonly held: boolean;
  /** Called with true when this process takes the lease, false when it loses or gives it up. */
  onChange(fn: (held: boolean) => void): () => void;
  /** Looks now instead of at the next tick (tests, start-up). */
  check(): Promise<void>;
  /** Stops renewing and gives the lease up, so another process takes it at once (clean shutdown). */
  release(): Promise<void>;
}

export type LeaseStep = 'renew' | 'take' | 'wait';

/**
 * What a process should do given the lease's row, pure: renew its own, take a free or expired one
 * or one whose holder is known dead, else wait.
 */
export function leaseStep(row: { holder: string; expiresAt: number } | undefined, me: string, now: number, holderDead: (holder: string) => boolean = () => false): LeaseStep {
  if (row?.holder === me) return 'renew';
  if (!row || row.expiresAt <= now || holderDead(row.holder)) return 'take';
  return 'wait';
}

export function defaultHolderId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
}

/**
 * A holder named `host:pid:…` on this host whose process is gone (kill -9, a crash) needs no wait
 * for its lease to expire: a restarted control plane drives at once. A live pid (even a reused one)
 * or another host means wait, the safe side.
 */
export function deadOnThisHost(holder: string): boolean {
  const [host, pid] = holder.split(':');
  if (host !== hostname() || !/^\d+$/.test(pid ?? '') || Number(pid) === process.pid) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

type LeaseCtx = Pick<ControlPlaneContext, 'client' | 'writeAlone' | 'log' | 'now'>;

async function readLease(ctx: LeaseCtx, name: string): Promise<{ holder: string; expiresAt: number } | undefined> {
  const r = await ctx.client.execute({ sql: 'SELECT holder, expires_at FROM leases WHERE name = ?', args: [name] });
  return r.rows.length ? { holder: String(r.rows[0].holder), expiresAt: Number(r.rows[0].expires_at) } : undefined;
}

/**
 * Takes or renews the lease in one write transaction (the decision is made again under the write
 * lock, so two processes racing for a free lease cannot both win). Returns whether `me` holds it.
 */
export async function acquireLease(ctx: LeaseCtx, name: string, me: string, ttlMs: number): Promise<boolean> {
  return (await holdLease(ctx, name, me, ttlMs)) !== null;
}

/** acquireLease, telling when the lease was written (its expiry is that + ttl), or null when another holds it. */
async function holdLease(ctx: LeaseCtx, name: string, me: string, ttlMs: number): Promise<number | null> {
  // A transaction of its own, not in the write queue or the workers' write turn: behind a wave's
  // reports, and behind a worker whose event loop stalled with the turn, the renewal waited past the
  // ttl and the lease changed hands every few seconds (SCALING.md). SQLite's lock orders it.
  // A process that would only wait reads without the write lock: with --workers 10 every worker's look
  // (every 2 s) took SQLite's lock, and the holder of the write turn met it and retried its BEGIN on
  // timers of a busy event loop (100,000 devices, SCALING.md). Taking or renewing decides again below,
  // under the lock.
  const seen = (await ctx.client.execute({ sql: 'SELECT holder, expires_at FROM leases WHERE name = ?', args: [name] })).rows[0] as unknown as { holder: string; expires_at: number } | undefined;
  if (leaseStep(seen ? { holder: String(seen.holder), expiresAt: Number(seen.expires_at) } : undefined, me, ctx.now().getTime(), deadOnThisHost) === 'wait') return null;
  return ctx.writeAlone(async (tx) => {
    const now = ctx.now().getTime();
    const row = (await tx.all<{ holder: string; expires_at: number }>(sql`SELECT holder, expires_at FROM leases WHERE name = ${name}`))[0];
    const step = leaseStep(row ? { holder: row.holder, expiresAt: Number(row.expires_at) } : undefined, me, now, deadOnThisHost);
    if (step === 'wait') return null;
    if (step === 'renew') await tx.run(sql`UPDATE leases SET expires_at = ${now + ttlMs} WHERE name = ${name} AND holder = ${me}`);
    else await tx.run(sql`INSERT INTO leases (name, holder, acquired_at, expires_at) VALUES (${name}, ${me}, ${now}, ${now + ttlMs})
      ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at`);
    return now;
  });
}

/** Starts taking part in the lease `name`: the first look is at once, then every `renewMs`. */
export function startLease(ctx: LeaseCtx, name: string, opts: LeaseOptions = {}): Lease {
  const ttlMs = opts.ttlMs ?? 10_000;
  const renewMs = opts.renewMs ?? 2_000;
  if (!(renewMs > 0 && ttlMs > 2 * renewMs)) throw new Error(`lease ${name}: ttl (${ttlMs} ms) must exceed twice the renewal interval (${renewMs} ms)`);
  const me = opts.holder ?? defaultHolderId();
  const listeners = new Set<(held: boolean) => void>();
  let held = false;
  /** Local deadline of the current holding: when the last renewal was written + ttl - renewMs. */
  let validUntil = 0;
  let released = false;
  let running: Promise<void> | null = null;

  function set(next: boolean): void {
    if (next === held) return;
    held = next;
    ctx.log.info({ lease: name, holder: me, held }, held ? 'lease taken: this process runs the singletons' : 'lease lost: this process stops the singletons');
    for (const fn of [...listeners]) {
      try {
        fn(held);
      } catch (err) {
        ctx.log.error({ err, lease: name }, 'lease listener failed');
      }
    }
  }

  /**
   * Steps down once the last renewal is older than ttl - renewMs, whether or not a look is under
   * way: a renewal stuck in a loaded write queue (or the cluster's write turn) must not leave this
   * process driving campaigns beside its successor. At 100,000 devices such a holder kept `held`
   * for 130 s while three others took the lease in turn (SCALING.md, the lead's 12:28 run).
   */
  function lapse(): void {
    if (held && ctx.now().getTime() > validUntil) set(false);
  }

  /**
   * holdLease; a holder whose renewal met SQLite's lock held by others past the busy timeout (5 s)
   * tries again at once while its holding is still valid: nobody else can take the lease before it
   * expires, and waiting for the next look let it lapse. At 100,000 devices the holder lost it so
   * (the writer's and late workers' writes saturating the lock), and its successor's takeover began
   * with a membership sweep of 50 writes (SCALING.md).
   */
  async function renewWhileValid(): Promise<number | null> {
    for (;;) {
      try {
        return await holdLease(ctx, name, me, ttlMs);
      } catch (err) {
        if (released || !held || !isDatabaseBusy(err) || ctx.now().getTime() >= validUntil) throw err;
        ctx.log.warn({ err, lease: name }, 'lease renewal met a busy database; trying again while the lease is valid');
      }
    }
  }

  async function look(): Promise<void> {
    const started = ctx.now().getTime();
    lapse();
    try {
      if (!held) {
        // A read first: the others cost no write lock while the holder is alive.
        const row = await readLease(ctx, name);
        if (leaseStep(row, me, started, deadOnThisHost) === 'wait') return;
      }
      // From when the row was written, not when this look began: under load the renewal waits
      // in the write queue and for the write turn, and counted from the look's start a renewal that
      // waited past ttl - renewMs made the holder step down and take the lease again at its next look
      // (three flaps in one 20,000-device campaign, SCALING.md). The row's expiry counts from the write too.
      const written = await renewWhileValid();
      if (released) return;
      if (written !== null) validUntil = written + ttlMs - renewMs;
      set(written !== null);
    } catch (err) {
      if (released) return;
      ctx.log.warn({ err, lease: name }, 'lease renewal failed');
      if (held && ctx.now().getTime() > validUntil) set(false);
    }
  }

  function check(): Promise<void> {
    if (released) return Promise.resolve();
    lapse();
    running ??= look().finally(() => {
      running = null;
    });
    return running;
  }

  const timer = setInterval(() => void check(), renewMs);
  timer.unref();
  void check();

  return {
    name,
    holder: me,
    get held() {
      lapse();
      return held;
    },
    onChange(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    check,
    async release() {
      clearInterval(timer);
      await running?.catch(() => undefined);
      released = true;
      const was = held;
      set(false);
      if (was) await ctx.writeAlone(async (tx) => tx.run(sql`DELETE FROM leases WHERE name = ${name} AND holder = ${me}`)).catch((err: unknown) => ctx.log.warn({ err, lease: name }, 'lease release failed; it expires by itself'));
    },
  };
}

/**
 * Runs the singletons `start` makes while this process holds the lease: started when it is taken,
 * stopped when it is lost or given up. Returns a stop for shutdown.
 */
export function whileHeld(lease: Lease, start: () => { stop(): void }[]): () => void {
  let running: { stop(): void }[] | null = null;
  const apply = (held: boolean) => {
    if (held && !running) running = start();
    else if (!held && running) {
      for (const s of running) s.stop();
      running = null;
    }
  };
  const off = lease.onChange(apply);
  apply(lease.held);
  return () => {
    off();
    apply(false);
  };
}
