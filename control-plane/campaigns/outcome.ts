import type { DeviceReport } from '../../protocol/device.js';
import type { CampaignStatus } from './planner.js';

/**
 * The error a device gets when it sent no successful report within the device timeout. Its state is
 * 'failed' like any failure (the thresholds count both); status views tell the two apart by this
 * prefix, so a timeout needs no column of its own. A device whose own error text began with it would
 * only mislabel its own failure.
 */
export const DEVICE_TIMEOUT_ERROR = 'no successful report within ';
export const deviceTimeoutError = (timeout: string) => `${DEVICE_TIMEOUT_ERROR}${timeout} of the assignment`;

/** What a device's report says about its part in a campaign. */
export type DeviceOutcome = { kind: 'succeeded' } | { kind: 'failed'; error: string } | { kind: 'in-flight' };

/**
 * Success: the report is about the document the campaign assigned (its sequence), the device runs
 * the campaign's release, and every service runs healthy or runs without a health check.
 * Failure: the device says that document failed or was rolled back. Anything else is progress.
 */
export function classifyReport(report: Pick<DeviceReport, 'desiredSequence' | 'running' | 'phase' | 'services' | 'error'>, assigned: { sequence: number; release: string }): DeviceOutcome {
  if (report.desiredSequence !== assigned.sequence || !mayDecide(report)) return { kind: 'in-flight' };
  if (report.phase === 'failed' || report.phase === 'rolled-back') {
    return { kind: 'failed', error: report.error ?? `device reported ${report.phase}` };
  }
  // Running, here (mayDecide): succeeded once it runs the campaign's release, healthy.
  if (report.running !== assigned.release) return { kind: 'in-flight' };
  const healthy = Object.values(report.services).every(
    (s) => s.status === 'running' && (s.health === 'healthy' || s.health === 'none'),
  );
  return healthy ? { kind: 'succeeded' } : { kind: 'in-flight' };
}

/** Whether a report can decide an outcome at all: only one that says running, failed or rolled back (classifyReport). */
export function mayDecide(report: Pick<DeviceReport, 'phase'>): boolean {
  return report.phase === 'running' || report.phase === 'failed' || report.phase === 'rolled-back';
}

export type OperatorAction = 'start' | 'pause' | 'resume' | 'abort';

const TRANSITIONS: Record<OperatorAction, { from: readonly CampaignStatus[]; to: CampaignStatus }> = {
  start: { from: ['draft'], to: 'running' },
  pause: { from: ['running'], to: 'paused' },
  resume: { from: ['paused'], to: 'running' },
  abort: { from: ['draft', 'running', 'paused'], to: 'aborted' },
};

/** The status an operator action leads to, or null when the action makes no sense in `status`. */
export function transition(status: CampaignStatus, action: OperatorAction): CampaignStatus | null {
  const t = TRANSITIONS[action];
  return t.from.includes(status) ? t.to : null;
}
