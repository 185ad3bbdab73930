import type { DeviceReport, ReleasePhase } from '../../protocol/device.js';
import type { ControlPlaneContext, Tx } from '../context.js';
import { BatchedWrites } from '../db/batched-writes.js';
import { placeholderRows, Statement } from '../db/statement.js';
import { publishDeviceOutcome } from '../webhooks/device-events.js';

/**
 * Device reports, written in batches (issue 17). Reports are the write every device makes most
 * often; written one by one, each cost about seven statements (a savepoint, the previous row, the
 * twin row, the history row, the bounded-history delete, the release), and the statements' fixed
 * cost, not SQLite's work, was most of a report's time. Here every report that arrives while the
 * previous commit is in flight goes into the next one as one write of five statements whatever
 * their number: the previous rows of all of them, one multi-row upsert of the twin rows, one
 * multi-row insert of the history rows, one delete bounding the history of every device in the
 * batch, and the webhook outbox. Each request is answered after that commit, so a 202 is durable.
 */

export interface ReportOutcome {
  accepted: boolean;
  previousPhase: ReleasePhase | null;
}

interface Pending {
  deviceId: string;
  report: DeviceReport;
  /** When the control plane received it (ms). */
  now: number;
}

interface Previous {
  sequence: number;
  phase: string;
  desired_sequence: number | null;
}

/** Reports in one write at most: 13 parameters each stays far below SQLite's limit of 32,766. */
const MAX_BATCH = 256;

type Ctx = Pick<ControlPlaneContext, 'write' | 'events' | 'batches'> & { config: Pick<ControlPlaneContext['config'], 'reportHistoryLimit'> };

/** The item a report's write takes (plain data: with `--workers N` it goes to the writer process over IPC). */
export type ReportItem = Pending;

/** Writes reports in this process, batched; what the writer process of `--workers N` runs for every worker (cluster-writer.ts). */
export function localReportWrites(ctx: Pick<Ctx, 'write' | 'config'>): (item: ReportItem) => Promise<ReportOutcome> {
  const limit = ctx.config.reportHistoryLimit;
  const batches = new BatchedWrites<Pending, ReportOutcome>(ctx, async (sp, batch) => ({ outcomes: await writeBatch(sp, batch, limit), announce: () => undefined }), MAX_BATCH);
  return (item) => batches.submit(item);
}

/**
 * A worker's reports: written here, or with `--workers N` by the one writer process for all
 * (cluster-batches.ts). Either way the answer comes after the commit that holds the report.
 */
export class ReportWriter {
  private readonly write: (item: ReportItem) => Promise<ReportOutcome>;

  constructor(private readonly ctx: Ctx) {
    const remote = ctx.batches;
    this.write = remote ? (item) => remote.submit<ReportOutcome>('report', item) : localReportWrites(ctx);
  }

  /** Resolves once the report is committed (accepted) or found not newer than the last (not accepted). */
  async submit(deviceId: string, report: DeviceReport, now: number): Promise<ReportOutcome> {
    const o = await this.write({ deviceId, report, now });
    // After the commit: the campaign engine and the console learn of each accepted report.
    if (o.accepted) this.ctx.events.emit('report', { deviceId, report, previousPhase: o.previousPhase });
    return o;
  }
}

/**
 * The same decisions as one report at a time, in arrival order: a report is accepted when its
 * sequence is above the device's last (stored, or accepted earlier in this batch).
 */
async function writeBatch(tx: Tx, batch: Pending[], limit: number): Promise<ReportOutcome[]> {
  const ids = [...new Set(batch.map((p) => p.deviceId))];
  const last = new Map<string, Previous>();
  const previous = new Statement(`SELECT device_id, sequence, phase, desired_sequence FROM reported WHERE device_id IN (${placeholderRows('?', ids.length)})`, ids);
  for (const r of await tx.all<Previous & { device_id: string }>(previous)) {
    last.set(r.device_id, { sequence: Number(r.sequence), phase: r.phase, desired_sequence: r.desired_sequence === null ? null : Number(r.desired_sequence) });
  }
  const outcomes: ReportOutcome[] = [];
  const twin = new Map<string, Pending>();
  const history: Pending[] = [];
  const before: (Previous | null)[] = [];
  for (const p of batch) {
    const prev = last.get(p.deviceId) ?? null;
    if (prev && p.report.sequence <= prev.sequence) {
      outcomes.push({ accepted: false, previousPhase: prev.phase as ReleasePhase });
      continue;
    }
    outcomes.push({ accepted: true, previousPhase: (prev?.phase ?? null) as ReleasePhase | null });
    last.set(p.deviceId, { sequence: p.report.sequence, phase: p.report.phase, desired_sequence: p.report.desiredSequence });
    twin.set(p.deviceId, p);
    history.push(p);
    before.push(prev);
  }
  if (history.length === 0) return outcomes;
  // Statements built by hand (db/statement.ts): the texts drizzle's sql template made, without its cost.
  const twinArgs: unknown[] = [];
  for (const { deviceId, report: r, now } of twin.values()) {
    const delta = r.bytes.delta === undefined ? null : r.bytes.delta ? 1 : 0;
    twinArgs.push(deviceId, r.sequence, r.desiredSequence, r.running, r.phase, r.bytes.done, r.bytes.total, r.bytes.full ?? null, delta, JSON.stringify(r.services), r.error ?? null, r.at, now);
  }
  await tx.run(
    new Statement(
      `INSERT INTO reported (device_id, sequence, desired_sequence, running, phase, bytes_done, bytes_total, bytes_full, bytes_delta, services, error, at, received_at)
    VALUES ${placeholderRows('(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', twin.size)}
    ON CONFLICT (device_id) DO UPDATE SET sequence = excluded.sequence, desired_sequence = excluded.desired_sequence, running = excluded.running,
      phase = excluded.phase, bytes_done = excluded.bytes_done, bytes_total = excluded.bytes_total, bytes_full = excluded.bytes_full, bytes_delta = excluded.bytes_delta, services = excluded.services,
      error = excluded.error, at = excluded.at, received_at = excluded.received_at`,
      twinArgs,
    ),
  );
  const historyArgs: unknown[] = [];
  for (const { deviceId, report: r, now } of history) historyArgs.push(deviceId, r.sequence, r.desiredSequence, r.running, r.phase, r.error ?? null, JSON.stringify(r), now);
  // One row each, in arrival order: ids (and so the history's order) are what one-by-one writes gave.
  await tx.run(new Statement(`INSERT INTO report_history (device_id, sequence, desired_sequence, running, phase, error, report, received_at) VALUES ${placeholderRows('(?, ?, ?, ?, ?, ?, ?, ?)', history.length)}`, historyArgs));
  // Bounded history: each device of the batch keeps its newest `limit` rows (report_history_device index).
  await tx.run(
    new Statement(
      `DELETE FROM report_history WHERE id IN (SELECT id FROM (
      SELECT id, row_number() OVER (PARTITION BY device_id ORDER BY id DESC) AS newer FROM report_history WHERE device_id IN (${placeholderRows('?', twin.size)})
    ) WHERE newer > ?)`,
      [...twin.keys(), limit],
    ),
  );
  for (let i = 0; i < history.length; i++) {
    const p = history[i];
    const prev = before[i];
    await publishDeviceOutcome(tx, p.now, p.deviceId, p.report, prev ? { phase: prev.phase, desiredSequence: prev.desired_sequence } : null);
  }
  return outcomes;
}
