import { sql } from 'drizzle-orm';
import { formatDuration } from '../../common/grammar.js';
import { campaignStatuses } from '../../protocol/campaigns.js';
import { syncStates, type FleetStatus, type SyncState } from '../../protocol/fleet.js';
import { campaignStatus, type StatusReads } from '../campaigns/service.js';
import { activeCampaignIds, loadCampaign, type Reader } from '../campaigns/store.js';

/**
 * The fleet counted in SQL, one grouped scan of the enrolled devices with their desired and
 * reported rows, so the overview costs the same whether 10 or 100,000 devices report. Online uses
 * the stored sightings and the last report (sightings reach the table every few seconds).
 */
const SYNC = sql`CASE
    WHEN ds.device_id IS NULL THEN 'unassigned'
    WHEN r.device_id IS NOT NULL AND r.desired_sequence = ds.sequence AND r.phase = 'running' AND r.running = m.name || '@' || m.version THEN 'in-sync'
    WHEN r.device_id IS NOT NULL AND r.desired_sequence = ds.sequence AND r.phase IN ('failed', 'rolled-back') THEN 'failed'
    WHEN r.device_id IS NULL OR r.desired_sequence IS NULL OR r.desired_sequence < ds.sequence OR r.phase IN ('downloading', 'downloaded', 'applying') THEN 'updating'
    ELSE 'drifting' END`;

export interface DeviceCounts {
  total: number;
  online: number;
  offline: number;
  sync: Record<SyncState, number>;
  phases: Record<string, number>;
}

export async function deviceCounts(db: Reader, now: number, offlineAfterMs: number): Promise<DeviceCounts> {
  const cutoff = now - offlineAfterMs;
  const rows = await db.all<{ online: number; sync: SyncState; phase: string | null; n: number }>(sql`
    SELECT (max(coalesce(s.last_seen_at, 0), coalesce(r.received_at, 0)) >= ${cutoff}) AS online, ${SYNC} AS sync, r.phase AS phase, count(*) AS n
    FROM devices d LEFT JOIN device_sightings s ON s.device_id = d.id LEFT JOIN desired ds ON ds.device_id = d.id LEFT JOIN manifests m ON m.id = ds.manifest_id LEFT JOIN reported r ON r.device_id = d.id
    WHERE d.status = 'enrolled' GROUP BY 1, 2, 3`);
  const out: DeviceCounts = { total: 0, online: 0, offline: 0, sync: Object.fromEntries(syncStates.map((s) => [s, 0])) as Record<SyncState, number>, phases: {} };
  for (const r of rows) {
    const n = Number(r.n);
    out.total += n;
    if (Number(r.online)) out.online += n;
    else out.offline += n;
    out.sync[r.sync] += n;
    const phase = r.phase ?? 'none';
    out.phases[phase] = (out.phases[phase] ?? 0) + n;
  }
  return out;
}

export async function campaignCounts(db: Reader): Promise<Record<string, number>> {
  const rows = await db.all<{ status: string; n: number }>(sql`SELECT status, count(*) AS n FROM campaigns GROUP BY status`);
  const out: Record<string, number> = Object.fromEntries(campaignStatuses.map((s) => [s, 0]));
  for (const r of rows) out[r.status] = Number(r.n);
  return out;
}

const LIST_LIMIT = 20;

export async function fleetStatus(ctx: StatusReads, now: number, offlineAfterMs: number): Promise<FleetStatus> {
  const db: Reader = ctx.db;
  const active = [];
  for (const id of (await activeCampaignIds(db, ['running', 'paused', 'draft'])).reverse().slice(0, LIST_LIMIT)) {
    const c = await loadCampaign(db, id);
    if (c) active.push(await campaignStatus(ctx, c, now, 10));
  }
  const failures = await db.all<{ serial: string; phase: string; running: string | null; error: string | null; received_at: number }>(sql`
    SELECT d.serial, r.phase, r.running, r.error, r.received_at FROM reported r JOIN devices d ON d.id = r.device_id
    WHERE r.phase IN ('failed', 'rolled-back') AND d.status = 'enrolled' ORDER BY r.received_at DESC LIMIT ${LIST_LIMIT}`);
  return {
    devices: await deviceCounts(db, now, offlineAfterMs),
    campaigns: { byStatus: await campaignCounts(db), active },
    recentFailures: failures.map((f) => ({ serial: f.serial, phase: f.phase as FleetStatus['recentFailures'][number]['phase'], release: f.running, error: f.error, at: new Date(Number(f.received_at)).toISOString() })),
    at: new Date(now).toISOString(),
    offlineAfter: formatDuration(offlineAfterMs),
  } as FleetStatus;
}
