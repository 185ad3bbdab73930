import { sql, type SQL } from 'drizzle-orm';
import type { Db, Tx } from '../context.js';
import { selectorCondition, type Selector } from '../selector.js';
import type { CampaignProgress, CampaignStatus, FleetCounts, WaveCounts } from './planner.js';
import type { CampaignSpec } from './spec.js';

/**
 * The campaign tables, read and written with set-based SQL: a wave of 100,000 devices is a handful
 * of statements, never a loop of round trips.
 */

/** The labels of the device rows these statements alias `d`. */
const LABELS = sql`d.labels`;

/** Either the plain database or a write transaction: reads work on both. */
export type Reader = Db | Tx;

export interface CampaignRecord {
  id: string;
  name: string;
  manifestId: string;
  release: string;
  spec: CampaignSpec;
  progress: CampaignProgress;
  nextWindowAt: number | null;
  statusReason: string | null;
  createdAt: number;
  createdBy: string;
  startedAt: number | null;
  finishedAt: number | null;
  updatedAt: number;
  /** Wave assignments made so far (0116). */
  assignments: number;
}

interface CampaignRow {
  id: string;
  name: string;
  manifest_id: string;
  release: string;
  spec: string;
  status: CampaignStatus;
  current_wave: number;
  soak_until: number | null;
  failures_acknowledged_at: number | null;
  next_window_at: number | null;
  status_reason: string | null;
  created_at: number;
  created_by: string;
  started_at: number | null;
  finished_at: number | null;
  updated_at: number;
  assignments: number;
}

function fromRow(r: CampaignRow): CampaignRecord {
  return {
    id: r.id,
    name: r.name,
    manifestId: r.manifest_id,
    release: r.release,
    spec: JSON.parse(r.spec) as CampaignSpec,
    progress: {
      status: r.status,
      currentWave: Number(r.current_wave),
      soakUntil: r.soak_until === null ? null : Number(r.soak_until),
      failuresAcknowledgedAt: r.failures_acknowledged_at === null ? null : Number(r.failures_acknowledged_at),
    },
    nextWindowAt: r.next_window_at === null ? null : Number(r.next_window_at),
    statusReason: r.status_reason,
    createdAt: Number(r.created_at),
    createdBy: r.created_by,
    startedAt: r.started_at === null ? null : Number(r.started_at),
    finishedAt: r.finished_at === null ? null : Number(r.finished_at),
    updatedAt: Number(r.updated_at),
    assignments: Number(r.assignments),
  };
}

export async function loadCampaign(db: Reader, id: string): Promise<CampaignRecord | null> {
  const rows = await db.all<CampaignRow>(sql`SELECT * FROM campaigns WHERE id = ${id}`);
  return rows[0] ? fromRow(rows[0]) : null;
}

export async function listCampaigns(db: Reader, status: CampaignStatus | null, limit: number): Promise<CampaignRecord[]> {
  const rows = await db.all<CampaignRow>(
    status === null
      ? sql`SELECT * FROM campaigns ORDER BY created_at DESC LIMIT ${limit}`
      : sql`SELECT * FROM campaigns WHERE status = ${status} ORDER BY created_at DESC LIMIT ${limit}`,
  );
  return rows.map(fromRow);
}

export async function activeCampaignIds(db: Reader, statuses: CampaignStatus[]): Promise<string[]> {
  const rows = await db.all<{ id: string }>(sql`SELECT id FROM campaigns WHERE status IN (${sql.join(statuses.map((s) => sql`${s}`), sql`, `)}) ORDER BY created_at`);
  return rows.map((r) => r.id);
}

export async function insertCampaign(tx: Tx, c: { id: string; name: string; manifestId: string; spec: CampaignSpec; createdBy: string; now: number }): Promise<void> {
  await tx.run(sql`INSERT INTO campaigns (id, name, manifest_id, release, selector, spec, status, current_wave, created_at, created_by, updated_at)
    VALUES (${c.id}, ${c.name}, ${c.manifestId}, ${c.spec.release}, ${c.spec.selector}, ${JSON.stringify(c.spec)}, 'draft', 0, ${c.now}, ${c.createdBy}, ${c.now})`);
}

export async function updateProgress(
  tx: Tx,
  id: string,
  now: number,
  change: Partial<{ status: CampaignStatus; currentWave: number; soakUntil: number | null; failuresAcknowledgedAt: number; nextWindowAt: number | null; statusReason: string | null; startedAt: number; finishedAt: number }>,
): Promise<void> {
  const sets: SQL[] = [sql`updated_at = ${now}`];
  if (change.status !== undefined) sets.push(sql`status = ${change.status}`);
  if (change.currentWave !== undefined) sets.push(sql`current_wave = ${change.currentWave}`);
  if (change.soakUntil !== undefined) sets.push(sql`soak_until = ${change.soakUntil}`);
  if (change.failuresAcknowledgedAt !== undefined) sets.push(sql`failures_acknowledged_at = ${change.failuresAcknowledgedAt}`);
  if (change.nextWindowAt !== undefined) sets.push(sql`next_window_at = ${change.nextWindowAt}`);
  if (change.statusReason !== undefined) sets.push(sql`status_reason = ${change.statusReason}`);
  if (change.startedAt !== undefined) sets.push(sql`started_at = ${change.startedAt}`);
  if (change.finishedAt !== undefined) sets.push(sql`finished_at = ${change.finishedAt}`);
  await tx.run(sql`UPDATE campaigns SET ${sql.join(sets, sql`, `)} WHERE id = ${id}`);
}

/**
 * Adds every enrolled device the selector matches and no active campaign holds. Devices already in
 * this campaign are left alone. Returns how many joined.
 *
 * Inserted in device id order: the members' primary key and three of their indexes lead with the
 * device id, and ids are random (devices/routes.ts), so rows in the devices table's order landed
 * all over b-trees far larger than the page cache: 4.4 s of a 100,000-device creation against
 * 0.3-0.5 s sorted (issue 17). The sort is SQLite's sorter (`+d.id`), not the id index, whose
 * order would fetch every device row at random.
 */
export async function joinMatchingDevices(tx: Tx, campaignId: string, selector: Selector, now: number, late: boolean, onlyDevice?: string, slice?: DeviceSlice): Promise<number> {
  const res = await tx.run(sql`INSERT INTO campaign_devices (campaign_id, device_id, state, active, late, joined_at)
    SELECT ${campaignId}, d.id, 'pending', 1, ${late ? 1 : 0}, ${now} FROM devices d
    WHERE d.status = 'enrolled' AND ${selectorCondition(selector, LABELS)}
      ${onlyDevice === undefined ? sql`` : sql`AND d.id = ${onlyDevice}`} ${sliceCondition(sql`d.id`, slice)}
      AND NOT EXISTS (SELECT 1 FROM campaign_devices a WHERE a.device_id = d.id AND (a.active = 1 OR a.campaign_id = ${campaignId}))
    ORDER BY +d.id`);
  return res.rowsAffected;
}

export interface Conflict {
  deviceId: string;
  serial: string;
  campaignId: string;
  campaignName: string;
}

/** Enrolled devices the selector matches that another active campaign holds. */
export async function findConflicts(db: Reader, campaignId: string, selector: Selector, limit: number): Promise<{ total: number; sample: Conflict[] }> {
  const where = sql`FROM devices d JOIN campaign_devices a ON a.device_id = d.id AND a.active = 1 AND a.campaign_id <> ${campaignId}
    JOIN campaigns c ON c.id = a.campaign_id
    WHERE d.status = 'enrolled' AND ${selectorCondition(selector, LABELS)}`;
  const total = await db.all<{ n: number }>(sql`SELECT count(*) AS n ${where}`);
  if (Number(total[0]?.n ?? 0) === 0) return { total: 0, sample: [] };
  const sample = await db.all<Conflict>(sql`SELECT d.id AS deviceId, d.serial AS serial, c.id AS campaignId, c.name AS campaignName ${where} ORDER BY d.serial LIMIT ${limit}`);
  return { total: Number(total[0]?.n ?? 0), sample };
}

/** Takes the matching devices out of the other active campaigns that hold them (supersede). */
export async function releaseFromOtherCampaigns(tx: Tx, campaignId: string, selector: Selector, now: number): Promise<number> {
  const res = await tx.run(sql`UPDATE campaign_devices SET active = 0, state = 'left', finished_at = ${now},
      last_error = ${`superseded by campaign ${campaignId}`}
    WHERE active = 1 AND campaign_id <> ${campaignId}
      AND device_id IN (SELECT d.id FROM devices d WHERE d.status = 'enrolled' AND ${selectorCondition(selector, LABELS)})`);
  return res.rowsAffected;
}

/** A finished campaign holds no device any more. */
export async function releaseAll(tx: Tx, campaignId: string): Promise<void> {
  await tx.run(sql`UPDATE campaign_devices SET active = 0 WHERE campaign_id = ${campaignId} AND active = 1`);
}

/**
 * The counts the planner decides on. Read every tick of a running campaign, so from the
 * campaign_devices_progress index alone (campaign, state, wave, assigned_at: 0114): the states by
 * wave and the oldest assignment never visit a member's row; only failed rows are read, for when
 * they failed. At 100,000 members the single query of before read every assigned, succeeded and
 * failed row each second (issue 17).
 */
export async function loadCounts(db: Reader, campaign: CampaignRecord): Promise<FleetCounts> {
  const ack = campaign.progress.failuresAcknowledgedAt;
  const id = campaign.id;
  // One pass over the index for every state the planner counts, not one per question: at 100,000
  // members the three passes were ~35 ms of each slice of a wave (campaign-waves.ts, SCALING.md).
  const byState = await db.all<{ wave: number | null; state: 'pending' | 'assigned' | 'succeeded' | 'failed'; n: number; oldest: number | null }>(sql`
    SELECT wave, state, count(*) AS n, min(assigned_at) AS oldest FROM campaign_devices
    WHERE campaign_id = ${id} AND state IN ('pending', 'assigned', 'succeeded', 'failed') GROUP BY state, wave`);
  const acked =
    ack === null
      ? []
      : await db.all<{ wave: number; n: number }>(sql`
    SELECT wave, count(*) AS n FROM campaign_devices WHERE campaign_id = ${id} AND state = 'failed' AND finished_at <= ${ack} GROUP BY wave`);
  const waves: WaveCounts[] = [];
  let pending = 0;
  const members = byState.filter((r) => r.state !== 'pending');
  const top = members.reduce((m, r) => Math.max(m, Number(r.wave) + 1), 0);
  for (let i = 0; i < top; i++) waves.push({ assigned: 0, succeeded: 0, failed: 0, acknowledgedFailed: 0, oldestAssignedAt: null });
  for (const r of byState) if (r.state === 'pending') pending += Number(r.n);
  for (const r of members) {
    const w = waves[Number(r.wave)];
    w[r.state as 'assigned' | 'succeeded' | 'failed'] = Number(r.n);
    if (r.state === 'assigned' && r.oldest !== null) w.oldestAssignedAt = Number(r.oldest);
  }
  for (const r of acked) waves[Number(r.wave)].acknowledgedFailed = Number(r.n);
  return { pending, waves };
}

/** Devices still waiting for their wave that no longer match (relabelled, revoked) leave. */
export async function dropUnmatchedPending(tx: Tx, campaignId: string, selector: Selector, now: number, slice?: DeviceSlice): Promise<number> {
  const res = await tx.run(sql`UPDATE campaign_devices SET active = 0, state = 'left', finished_at = ${now},
      last_error = 'no longer matches the selector or no longer enrolled'
    WHERE campaign_id = ${campaignId} AND state = 'pending' ${sliceCondition(sql`device_id`, slice)}
      AND device_id NOT IN (SELECT d.id FROM devices d WHERE d.status = 'enrolled' AND ${selectorCondition(selector, LABELS)} ${sliceCondition(sql`d.id`, slice)})`);
  return res.rowsAffected;
}

/**
 * Device ids in (after, upTo]; upTo null: to the end. The membership sweep goes through the fleet
 * in slices, a write each, so no write reads every device of a large fleet (issue 17).
 */
export interface DeviceSlice {
  after: string;
  upTo: string | null;
}

function sliceCondition(column: SQL, slice: DeviceSlice | undefined): SQL {
  if (!slice) return sql``;
  return slice.upTo === null ? sql`AND ${column} > ${slice.after}` : sql`AND ${column} > ${slice.after} AND ${column} <= ${slice.upTo}`;
}

/** The slices of `size` device ids, in id order, from the devices table (read outside any write). */
export async function deviceSlices(db: Reader, size: number): Promise<DeviceSlice[]> {
  const slices: DeviceSlice[] = [];
  let after = '';
  for (;;) {
    const [row] = await db.all<{ id: string }>(sql`SELECT id FROM devices WHERE id > ${after} ORDER BY id LIMIT 1 OFFSET ${size - 1}`);
    // Devices added after this read land in the last slice (open-ended) or inside one: none is missed.
    slices.push({ after, upTo: row ? row.id : null });
    if (!row) return slices;
    after = row.id;
  }
}
