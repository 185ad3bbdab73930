import { sql } from 'drizzle-orm';
import type { DeviceReport } from '../../protocol/device.js';
import type { Tx } from '../context.js';
import { publishEvent } from './outbox.js';

/**
 * `device.failed` / `device.rolled_back` from an accepted report: once per release attempt, when
 * the phase becomes failed or rolled-back (a repeated report of the same outcome is not a new event).
 */
export async function publishDeviceOutcome(tx: Tx, now: number, deviceId: string, report: DeviceReport, prev: { phase: string; desiredSequence: number | null } | null): Promise<void> {
  const type = report.phase === 'failed' ? 'device.failed' : report.phase === 'rolled-back' ? 'device.rolled_back' : null;
  if (!type) return;
  if (prev && prev.phase === report.phase && prev.desiredSequence === report.desiredSequence) return;
  const [d] = await tx.all<{ serial: string }>(sql`SELECT serial FROM devices WHERE id = ${deviceId}`);
  await publishEvent(tx, now, type, `devices/${d?.serial ?? deviceId}`, {
    deviceId,
    serial: d?.serial ?? null,
    desiredSequence: report.desiredSequence,
    running: report.running,
    error: report.error ?? null,
  });
}
