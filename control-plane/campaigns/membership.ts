import { sql } from 'drizzle-orm';
import type { DeviceReport } from '../../protocol/device.js';
import type { ControlPlaneContext, Tx } from '../context.js';
import { matchesSelector, parseSelector } from '../selector.js';
import { classifyReport, mayDecide } from './outcome.js';
import { ACTIVE_STATUSES } from './planner.js';
import { activeCampaignIds, joinMatchingDevices, loadCampaign } from './store.js';

/**
 * How devices enter and leave campaigns after creation, and how their reports become outcomes.
 * Each function returns the ids of the campaigns it changed, so the caller can advance them.
 */

export interface AssignedRow {
  campaign_id: string;
  device_id: string;
  state: 'assigned' | 'succeeded' | 'failed';
  desired_sequence: number;
  release: string;
}

type ReportFields = Pick<DeviceReport, 'desiredSequence' | 'running' | 'phase' | 'services' | 'error'>;

async function applyOutcome(tx: Tx, row: AssignedRow, report: ReportFields, now: number): Promise<boolean> {
  const outcome = classifyReport(report, { sequence: Number(row.desired_sequence), release: row.release });
  if (outcome.kind === 'in-flight' || outcome.kind === row.state) return false;
  await tx.run(sql`UPDATE campaign_devices SET state = ${outcome.kind}, finished_at = ${now},
      last_error = ${outcome.kind === 'failed' ? outcome.error : null}
    WHERE campaign_id = ${row.campaign_id} AND device_id = ${row.device_id} AND state = ${row.state} AND active = 1`);
  return true;
}

/** Devices per read of their campaign rows. */
const READ_CHUNK = 500;

/**
 * Reports, in arrival order, batched by the scheduler (the 'report' event): the fast path. The
 * campaign rows of every device named are read outside the write lock (an indexed read per 500
 * devices), so reports that change no campaign cost no write; those that move an outcome are
 * written in one transaction, each update conditional on the state it was decided from. Two
 * reports of one device in a batch are decided in order, as they would be one after the other.
 * One write per batch, not one per report, is what keeps campaign progress up with a fleet's
 * reports (issue 17: one write each, serialized, fell minutes behind at 100,000 devices).
 */
export async function recordReports(ctx: Pick<ControlPlaneContext, 'db' | 'write' | 'now' | 'batches'>, all: { deviceId: string; report: ReportFields }[]): Promise<string[]> {
  // A report of any other phase (downloading, …) moves no outcome whatever the member's row says:
  // its device's rows are not read (half of a campaign's reports, issue 17).
  const reports = all.filter((r) => mayDecide(r.report));
  const ids = [...new Set(reports.map((r) => r.deviceId))];
  const byDevice = new Map<string, AssignedRow[]>();
  for (let i = 0; i < ids.length; i += READ_CHUNK) {
    const rows = await ctx.db.all<AssignedRow>(sql`
      SELECT cd.campaign_id, cd.device_id, cd.state, cd.desired_sequence, c.release FROM campaign_devices cd
      JOIN campaigns c ON c.id = cd.campaign_id
      WHERE cd.device_id IN (${sql.join(
        ids.slice(i, i + READ_CHUNK).map((id) => sql`${id}`),
        sql`, `,
      )}) AND cd.active = 1 AND c.status IN ('running', 'paused')
        AND cd.state IN ('assigned', 'succeeded', 'failed') AND cd.desired_sequence IS NOT NULL`);
    for (const row of rows) byDevice.set(row.device_id, [...(byDevice.get(row.device_id) ?? []), row]);
  }
  const moves: { row: AssignedRow; report: ReportFields }[] = [];
  for (const { deviceId, report } of reports) {
    for (const row of byDevice.get(deviceId) ?? []) {
      const outcome = classifyReport(report, { sequence: Number(row.desired_sequence), release: row.release });
      if (outcome.kind === 'in-flight' || outcome.kind === row.state) continue;
      // Decided from the state as it stands now; a later report of the device starts from this outcome.
      moves.push({ row: { ...row }, report });
      row.state = outcome.kind;
    }
  }
  if (moves.length === 0) return [];
  const item: OutcomeMoves = { moves, now: ctx.now().getTime() };
  // With --workers N the writer process writes them with the reports (cluster-batches.ts): ten
  // workers each taking the write turn for these kept the writer's reports waiting (SCALING.md).
  if (ctx.batches) return ctx.batches.submit<string[]>('outcomes', item);
  return ctx.write((tx) => applyOutcomes(tx, item));
}

/** Outcomes decided from reports, to write (plain data: with `--workers N` they go to the writer process). */
export interface OutcomeMoves {
  moves: { row: AssignedRow; report: ReportFields }[];
  now: number;
}

/** Writes the outcomes, each conditional on the state it was decided from; the campaigns changed. */
export async function applyOutcomes(tx: Tx, { moves, now }: OutcomeMoves): Promise<string[]> {
  const changed = new Set<string>();
  for (const { row, report } of moves) {
    if (await applyOutcome(tx, row, report, now)) changed.add(row.campaign_id);
  }
  return [...changed];
}

/** Report history ids (report_history.id) in (after, upTo]: the reports accepted between two reads. */
export interface ReportRange {
  after: number;
  upTo: number;
}

/**
 * Catches up on reports the event path missed (a crash between the report's commit and its
 * event, or a report taken by another control-plane process on a shared database): every device
 * still in flight whose latest report is about its campaign's document. With `changed`, only the
 * devices that reported in that range of the history (reconcile.ts keeps the range): the full join
 * over every in-flight member cost 0.8-2 s per 40 s in fleet-sim's last wave (issue 17).
 */
export async function reconcileReports(ctx: Pick<ControlPlaneContext, 'db' | 'write' | 'now'>, changed?: ReportRange): Promise<string[]> {
  // Read outside the write lock (WAL readers do not block the writer); write only what moves. Only
  // the campaign's in-flight rows are read (the progress index): without INDEXED BY, SQLite walked
  // every member of the campaign through its primary key, 100,000 rows a second (issue 17).
  const columns = sql`cd.campaign_id, cd.device_id, cd.state, cd.desired_sequence, c.release,
      r.desired_sequence AS r_desired, r.running AS r_running, r.phase AS r_phase, r.services AS r_services, r.error AS r_error`;
  const rows = await ctx.db.all<AssignedRow & { r_desired: number | null; r_running: string | null; r_phase: DeviceReport['phase']; r_services: string; r_error: string | null }>(
    changed
      ? // The history's ids only grow, in commit order (one writer, AUTOINCREMENT), and every accepted
        // report adds one: the devices in the range are every device whose report changed since.
        // CROSS JOIN keeps that order: left to itself, SQLite walked every member of the campaign.
        sql`SELECT ${columns}
    FROM (SELECT DISTINCT device_id FROM report_history WHERE id > ${changed.after} AND id <= ${changed.upTo}) h
    CROSS JOIN campaign_devices cd ON cd.device_id = h.device_id AND cd.active = 1 AND cd.state = 'assigned'
    CROSS JOIN campaigns c ON c.id = cd.campaign_id
    JOIN reported r ON r.device_id = cd.device_id AND r.desired_sequence = cd.desired_sequence
    WHERE c.status IN ('running', 'paused') AND r.phase IN ('running', 'failed', 'rolled-back')`
      : sql`SELECT ${columns}
    FROM campaigns c
    JOIN campaign_devices cd INDEXED BY campaign_devices_progress ON cd.campaign_id = c.id AND cd.state = 'assigned'
    JOIN reported r ON r.device_id = cd.device_id AND r.desired_sequence = cd.desired_sequence
    WHERE cd.active = 1 AND c.status IN ('running', 'paused')
      AND r.phase IN ('running', 'failed', 'rolled-back')`,
  );
  const moving: { row: AssignedRow; report: ReportFields }[] = [];
  for (const row of rows) {
    const report: ReportFields = {
      desiredSequence: row.r_desired === null ? null : Number(row.r_desired),
      running: row.r_running,
      phase: row.r_phase,
      services: JSON.parse(row.r_services) as DeviceReport['services'],
      ...(row.r_error === null ? {} : { error: row.r_error }),
    };
    if (classifyReport(report, { sequence: Number(row.desired_sequence), release: row.release }).kind !== 'in-flight') moving.push({ row, report });
  }
  if (moving.length === 0) return [];
  return ctx.write((tx) => applyOutcomes(tx, { moves: moving, now: ctx.now().getTime() }));
}

/**
 * A device was enrolled or relabelled: it joins the first active campaign whose selector now
 * matches it (when no campaign holds it), and leaves a campaign whose selector no longer matches
 * it while it is still waiting for its wave. A device already given the release stays.
 */
export async function deviceChanged(ctx: Pick<ControlPlaneContext, 'now' | 'log'>, tx: Tx, deviceId: string, active?: string[]): Promise<string[]> {
  const now = ctx.now().getTime();
  const device = (await tx.all<{ labels: string; status: string }>(sql`SELECT labels, status FROM devices WHERE id = ${deviceId}`))[0];
  if (!device) return [];
  const labels = JSON.parse(device.labels) as Record<string, string>;
  const changed: string[] = [];
  const holding = (await tx.all<{ campaign_id: string; state: string }>(sql`SELECT campaign_id, state FROM campaign_devices WHERE device_id = ${deviceId} AND active = 1`))[0];
  if (holding) {
    const campaign = await loadCampaign(tx, holding.campaign_id);
    const stillMatches = device.status === 'enrolled' && campaign !== null && matchesSelector(parseSelector(campaign.spec.selector), labels);
    if (!stillMatches && holding.state === 'pending') {
      await tx.run(sql`UPDATE campaign_devices SET active = 0, state = 'left', finished_at = ${now},
          last_error = ${device.status === 'enrolled' ? 'no longer matches the selector' : `device ${device.status}`}
        WHERE campaign_id = ${holding.campaign_id} AND device_id = ${deviceId}`);
      changed.push(holding.campaign_id);
    }
    return changed;
  }
  if (device.status !== 'enrolled') return changed;
  for (const id of active ?? (await activeCampaignIds(tx, [...ACTIVE_STATUSES]))) {
    const campaign = await loadCampaign(tx, id);
    if (!campaign) continue;
    const selector = parseSelector(campaign.spec.selector);
    if (!matchesSelector(selector, labels)) continue;
    const late = campaign.progress.status !== 'draft';
    if ((await joinMatchingDevices(tx, id, selector, now, late, deviceId)) > 0) {
      changed.push(id);
      ctx.log.info({ campaign: id, device: deviceId }, 'device joined campaign');
      break;
    }
  }
  return changed;
}

/**
 * deviceChanged for a batch of devices, with the campaigns read once, not once per device. With
 * no campaign a device could join or hold (none draft, running or paused: a finished campaign
 * releases its devices), it reads nothing else: an enrollment burst with no campaign costs one
 * statement per batch, not three per device (issue 17).
 */
export async function devicesChanged(ctx: Pick<ControlPlaneContext, 'now' | 'log'>, tx: Tx, deviceIds: Iterable<string>): Promise<string[]> {
  const active = await activeCampaignIds(tx, [...ACTIVE_STATUSES]);
  const changed = new Set<string>();
  if (!active.length) return [];
  for (const id of deviceIds) for (const c of await deviceChanged(ctx, tx, id, active)) changed.add(c);
  return [...changed];
}

/** A revoked device leaves its campaign: it will never report, and must not count as failed. */
export async function deviceRevoked(tx: Tx, deviceId: string, now: number): Promise<string[]> {
  const rows = await tx.all<{ campaign_id: string }>(sql`UPDATE campaign_devices SET active = 0, state = 'left',
      finished_at = ${now}, last_error = 'device revoked'
    WHERE device_id = ${deviceId} AND active = 1 AND state IN ('pending', 'assigned')
    RETURNING campaign_id`);
  return rows.map((r) => r.campaign_id);
}
