import { sql } from 'drizzle-orm';
import type { ControlPlaneContext } from '../context.js';
import { publishEvent } from './outbox.js';

interface Change {
  id: string;
  serial: string;
  last_seen_at: number | null;
}

/**
 * `device.online` / `device.offline`. Online is what the twin says (heard from within
 * `offlineAfter`), read from `devices.last_seen_at`, which sightings reach in batches (every 5 s).
 * `device_presence` remembers what was last announced, so each change is announced once, in the
 * transaction that records it. A device never announced before counts as offline, so the first
 * sweep after an upgrade announces the devices online then. The check is a read; a write happens
 * only when something changed.
 */
export async function sweepPresence(ctx: Pick<ControlPlaneContext, 'db' | 'write' | 'now' | 'config'>): Promise<{ online: number; offline: number }> {
  const now = ctx.now().getTime();
  const cutoff = now - ctx.config.offlineAfterMs;
  const cameOnline = sql`SELECT d.id, d.serial, d.last_seen_at FROM devices d
    WHERE d.status = 'enrolled' AND d.last_seen_at >= ${cutoff}
      AND NOT EXISTS (SELECT 1 FROM device_presence p WHERE p.device_id = d.id AND p.online = 1)`;
  const wentOffline = sql`SELECT d.id, d.serial, d.last_seen_at FROM device_presence p JOIN devices d ON d.id = p.device_id
    WHERE p.online = 1 AND (d.status <> 'enrolled' OR d.last_seen_at IS NULL OR d.last_seen_at < ${cutoff})`;
  const [up, down] = [await ctx.db.all<Change>(cameOnline), await ctx.db.all<Change>(wentOffline)];
  if (!up.length && !down.length) return { online: 0, offline: 0 };
  return ctx.write(async (tx) => {
    // Read again under the write lock: another sweep (or process) may have announced them.
    const ups = await tx.all<Change>(cameOnline);
    const downs = await tx.all<Change>(wentOffline);
    for (const d of ups) {
      await tx.run(sql`INSERT INTO device_presence (device_id, online, changed_at) VALUES (${d.id}, 1, ${now})
        ON CONFLICT (device_id) DO UPDATE SET online = 1, changed_at = excluded.changed_at`);
      await publishEvent(tx, now, 'device.online', `devices/${d.serial}`, { deviceId: d.id, serial: d.serial, lastSeenAt: new Date(Number(d.last_seen_at)).toISOString() });
    }
    for (const d of downs) {
      await tx.run(sql`UPDATE device_presence SET online = 0, changed_at = ${now} WHERE device_id = ${d.id}`);
      await publishEvent(tx, now, 'device.offline', `devices/${d.serial}`, { deviceId: d.id, serial: d.serial, lastSeenAt: d.last_seen_at === null ? null : new Date(Number(d.last_seen_at)).toISOString(), offlineAfterMs: ctx.config.offlineAfterMs });
    }
    return { online: ups.length, offline: downs.length };
  });
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
