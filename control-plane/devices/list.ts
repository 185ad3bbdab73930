import { and, count, eq, gt, sql } from 'drizzle-orm';
import type { z } from 'zod';
import type { deviceList } from '../../protocol/devices.js';
import type { ReleasePhase } from '../../protocol/device.js';
import type { Db } from '../db/open.js';
import { desired, deviceSightings, devices, manifests, reported } from '../db/schema.js';
import { selectorCondition, type Selector } from '../selector.js';
import type { LastSeen } from './last-seen.js';

export interface DevicePage {
  selector: Selector | null;
  limit: number;
  offset: number;
  /** Keyset cursor: only devices whose serial sorts after this one (the `next` of the previous page). */
  after: string | null;
}

/** Last heard from: the stored sighting, one not yet flushed, or the last report, whichever is latest. */
export function lastSeenOf(seen: LastSeen, deviceId: string, stored: number | null, reportedAt: number | null): number | null {
  const at = seen.merged(deviceId, stored);
  if (reportedAt === null) return at;
  return at === null ? reportedAt : Math.max(at, reportedAt);
}

/**
 * One page of the devices a selector picks, in serial order, and how many it picks in all. SQLite
 * filters (the selector compiled to SQL, as for campaigns) and pages (the serial index), so a page
 * costs its own rows, not the fleet's; `total` is one count over the matching rows.
 */
export async function listDevices(
  db: Db,
  page: DevicePage,
  view: { seen: LastSeen; now: number; offlineAfterMs: number },
): Promise<z.infer<typeof deviceList>> {
  const matches = page.selector ? selectorCondition(page.selector, sql`${devices.labels}`) : undefined;
  const where = page.after === null ? matches : and(matches, gt(devices.serial, page.after));
  const rows = await db
    .select({ d: devices, seenAt: deviceSightings.lastSeenAt, sequence: desired.sequence, name: manifests.name, version: manifests.version, phase: reported.phase, running: reported.running, reportedAt: reported.receivedAt })
    .from(devices)
    .leftJoin(deviceSightings, eq(deviceSightings.deviceId, devices.id))
    .leftJoin(desired, eq(desired.deviceId, devices.id))
    .leftJoin(manifests, eq(manifests.id, desired.manifestId))
    .leftJoin(reported, eq(reported.deviceId, devices.id))
    .where(where)
    .orderBy(devices.serial)
    // One row more than asked tells whether a next page exists without a second query.
    .limit(page.limit + 1)
    .offset(page.offset);
  const total = (await db.select({ n: count() }).from(devices).where(matches))[0]?.n ?? 0;
  const more = rows.length > page.limit;
  const shown = more ? rows.slice(0, page.limit) : rows;
  return {
    total,
    next: more ? shown[shown.length - 1].d.serial : null,
    devices: shown.map((r) => {
      const lastSeen = lastSeenOf(view.seen, r.d.id, r.seenAt, r.reportedAt);
      return {
        id: r.d.id,
        serial: r.d.serial,
        labels: JSON.parse(r.d.labels) as Record<string, string>,
        status: r.d.status,
        online: lastSeen !== null && view.now - lastSeen <= view.offlineAfterMs,
        lastSeenAt: lastSeen === null ? null : new Date(lastSeen).toISOString(),
        desired: r.sequence !== null && r.name !== null ? { release: `${r.name}@${r.version}`, sequence: r.sequence } : null,
        phase: r.phase as ReleasePhase | null,
        running: r.running ?? null,
      };
    }),
  };
}
