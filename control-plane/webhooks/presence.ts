import { setImmediate as turn } from 'node:timers/promises';
import { sql, type SQL } from 'drizzle-orm';
import type { ControlPlaneContext, Tx } from '../context.js';
import { publishEventTo, readWebhooks, webhooksWanting } from './outbox.js';

/**
 * Sightings read per window. A sweep goes through `device_sightings` in windows of device ids, each
 * read on its own with a turn of the event loop between, and writes what changed in a window in a
 * write of its own (at most this many changes): at 100,000 devices neither a read nor a write holds
 * the loop (and the writer) for long, and a fleet coming online at once (after a restart, or polling
 * for the first time) is announced in 20 short writes, not one of minutes (issue 17).
 */
export const PRESENCE_WINDOW = 5000;
/** Rows per multi-row statement (3 parameters each). */
const CHUNK = 500;

/**
 * `device.online` / `device.offline`. Online is what the twin says (enrolled, and heard from within
 * `offlineAfter`), read from `device_sightings`, which sightings reach in batches (every 5 s).
 * `device_presence` remembers what was last announced, so each change is announced once, in the
 * transaction that records it. A device never announced before counts as offline, so the first
 * sweep after an upgrade announces the devices online then. The check is a read; a write happens
 * only when something changed, set-based, with the webhooks read once per write.
 *
 * The read walks the two narrow tables, not the wide `devices` rows (issue 17: at 100,000 devices
 * a sweep every 15 s cost 230-260 ms of CPU that way, 27 ms this way, in the process that also
 * drives campaigns). It can: a device is announced online only once it has a sighting, and the
 * two rows are removed together (devices/remove.ts), so an announced device always has one. The
 * device's status is read only for the few rows that differ, and, in a last pass, for the devices
 * not enrolled (revoked ones announced online go offline at once, not after `offlineAfter`).
 */
export async function sweepPresence(ctx: Pick<ControlPlaneContext, 'db' | 'write' | 'now' | 'config'>, window = PRESENCE_WINDOW): Promise<{ online: number; offline: number }> {
  const now = ctx.now().getTime();
  const cutoff = now - ctx.config.offlineAfterMs;
  const total = { online: 0, offline: 0 };
  const apply = async (changes: SQL) => {
    if ((await ctx.db.all<Change>(changes)).length === 0) return;
    const done = await ctx.write(async (tx) => {
      // Read again under the write lock: another sweep (or process) may have announced them.
      const found = await tx.all<Change>(changes);
      const ups = found.filter((d) => d.online_now === 1);
      const downs = found.filter((d) => d.online_now !== 1);
      await announce(tx, now, ups, downs, ctx.config.offlineAfterMs);
      return { online: ups.length, offline: downs.length };
    });
    total.online += done.online;
    total.offline += done.offline;
  };
  let after = '';
  for (;;) {
    const [end] = await ctx.db.all<{ id: string }>(sql`SELECT device_id AS id FROM device_sightings WHERE device_id > ${after} ORDER BY device_id LIMIT 1 OFFSET ${window - 1}`);
    // The last window is open-ended: devices seen meanwhile are in it.
    const upTo = end ? end.id : null;
    await apply(seenChangesIn(after, upTo, cutoff));
    if (upTo === null) break;
    after = upTo;
    await turn();
  }
  await apply(notEnrolledStillOnline());
  return total;
}

interface Change {
  id: string;
  serial: string;
  last_seen_at: number | null;
  /** 1: online now and not announced so; 0: announced online and offline now. */
  online_now: number;
}

/**
 * The devices seen, of ids (after, upTo], whose presence by time differs from what was last
 * announced, less the not-enrolled ones that would go online. MATERIALIZED keeps SQLite from
 * folding the join with `devices` into the scan, which would read every wide row again.
 */
export function seenChangesIn(after: string, upTo: string | null, cutoff: number): SQL {
  return sql`WITH differing AS MATERIALIZED (
      SELECT s.device_id, s.last_seen_at, (s.last_seen_at >= ${cutoff}) AS seen_lately
      FROM device_sightings s LEFT JOIN device_presence p ON p.device_id = s.device_id
      WHERE s.device_id > ${after} ${upTo === null ? sql`` : sql`AND s.device_id <= ${upTo}`}
        AND (s.last_seen_at >= ${cutoff}) <> coalesce(p.online = 1, 0))
    SELECT d.device_id AS id, dv.serial, d.last_seen_at, d.seen_lately AS online_now
    FROM differing d JOIN devices dv ON dv.id = d.device_id
    WHERE d.seen_lately = 0 OR dv.status = 'enrolled'`;
}

/** Devices announced online that are no longer enrolled (revoked, or reset to registered): offline now. */
export function notEnrolledStillOnline(): SQL {
  return sql`SELECT dv.id, dv.serial, s.last_seen_at, 0 AS online_now
    FROM devices dv CROSS JOIN device_presence p ON p.device_id = dv.id
    LEFT JOIN device_sightings s ON s.device_id = dv.id
    WHERE dv.status <> 'enrolled' AND p.online = 1`;
}

async function announce(tx: Tx, now: number, ups: Change[], downs: Change[], offlineAfterMs: number): Promise<void> {
  for (let i = 0; i < ups.length; i += CHUNK) {
    const rows = ups.slice(i, i + CHUNK).map((d) => sql`(${d.id}, 1, ${now})`);
    await tx.run(sql`INSERT INTO device_presence (device_id, online, changed_at) VALUES ${sql.join(rows, sql`, `)}
      ON CONFLICT (device_id) DO UPDATE SET online = 1, changed_at = excluded.changed_at`);
  }
  for (let i = 0; i < downs.length; i += CHUNK) {
    const ids = downs.slice(i, i + CHUNK).map((d) => sql`${d.id}`);
    await tx.run(sql`UPDATE device_presence SET online = 0, changed_at = ${now} WHERE device_id IN (${sql.join(ids, sql`, `)})`);
  }
  const hooks = await readWebhooks(tx);
  const [toOnline, toOffline] = [webhooksWanting(hooks, 'device.online'), webhooksWanting(hooks, 'device.offline')];
  const iso = (at: number | null) => (at === null ? null : new Date(Number(at)).toISOString());
  if (toOnline.length) for (const d of ups) await publishEventTo(tx, now, 'device.online', `devices/${d.serial}`, { deviceId: d.id, serial: d.serial, lastSeenAt: iso(d.last_seen_at) }, toOnline);
  if (toOffline.length) for (const d of downs) await publishEventTo(tx, now, 'device.offline', `devices/${d.serial}`, { deviceId: d.id, serial: d.serial, lastSeenAt: iso(d.last_seen_at), offlineAfterMs }, toOffline);
}

/** Sweeps every quarter of `offlineAfter` (1 s to 15 s), so a change is announced soon after the twin shows it. */
export function startPresenceSweeper(ctx: ControlPlaneContext): { stop(): void } {
  const every = Math.min(15_000, Math.max(1000, Math.round(ctx.config.offlineAfterMs / 4)));
  let busy = false;
  let stopped = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    sweepPresence(ctx)
      .catch((err: unknown) => {
        if (!stopped) ctx.log.warn({ err }, 'presence sweep failed');
      })
      .finally(() => (busy = false));
  }, every);
  timer.unref();
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
