import type { WaveTarget } from '../../common/grammar.js';
import type { CampaignSpec } from './spec.js';
import { windowState } from './window.js';

/**
 * The campaign planner: a pure function from what the database says about a campaign to the next
 * steps to take. The executor applies the steps and plans again, until the planner has nothing
 * more to say; so each call only needs to decide the next thing, never simulate the database.
 */

export type CampaignStatus = 'draft' | 'running' | 'paused' | 'completed' | 'failed' | 'aborted';
export const ACTIVE_STATUSES: readonly CampaignStatus[] = ['draft', 'running', 'paused'];

/** Where one device is in the campaign. `left`: superseded by another campaign or revoked before its turn. */
export type RolloutState = 'pending' | 'assigned' | 'succeeded' | 'failed' | 'rolled-back' | 'left';

export interface CampaignProgress {
  status: CampaignStatus;
  /** Index of the wave being rolled out, or soaked after it passed. */
  currentWave: number;
  /** Set while soaking after the current wave passed. */
  soakUntil: number | null;
  /** Failures up to this time were acknowledged by an operator resuming the campaign. */
  failuresAcknowledgedAt: number | null;
}

export interface WaveCounts {
  /** Assigned and not yet finished (in flight). */
  assigned: number;
  succeeded: number;
  failed: number;
  /** The part of `failed` that an operator acknowledged by resuming. */
  acknowledgedFailed: number;
  /** Assignment time of the oldest in-flight device, for the device timeout. */
  oldestAssignedAt: number | null;
}

export interface FleetCounts {
  /** Devices of the campaign not yet assigned (late joiners included). */
  pending: number;
  /** Per wave index; waves not reached yet may be absent. */
  waves: WaveCounts[];
}

export type CampaignStep =
  | { kind: 'assign-wave'; wave: number; count: number }
  | { kind: 'mark-failed'; reason: 'timeout'; assignedBefore: number }
  | { kind: 'start-soak'; wave: number; until: number }
  | { kind: 'advance-wave'; wave: number }
  | { kind: 'wait-window'; opensAt: number }
  | { kind: 'complete' }
  | { kind: 'pause'; reason: string }
  | { kind: 'rollback'; reason: string };

export type CampaignStepKind = CampaignStep['kind'];

const EMPTY_WAVE: WaveCounts = { assigned: 0, succeeded: 0, failed: 0, acknowledgedFailed: 0, oldestAssignedAt: null };
// Shares are compared with a tolerance so 0.95 of 20 devices is exactly 19, not 19.000000000000004.
const EPSILON = 1e-9;

export function waveSize(w: WaveCounts): number {
  return w.assigned + w.succeeded + w.failed;
}

/**
 * Cumulative device targets of each wave for a fleet of `fleet` devices. Percentages round up, so
 * a wave of a non-empty fleet is never silently empty, and targets never shrink from wave to wave.
 */
export function waveTargets(waves: WaveTarget[], fleet: number): number[] {
  let previous = 0;
  return waves.map((w) => {
    const raw = w.kind === 'count' ? w.count : Math.ceil((w.percent * fleet) / 100 - EPSILON);
    previous = Math.max(previous, Math.min(raw, fleet));
    return previous;
  });
}

/** Devices the campaign holds: pending plus everything assigned into a wave (failures included). */
export function fleetSize(counts: FleetCounts): number {
  return counts.pending + counts.waves.reduce((n, w) => n + waveSize(w), 0);
}

interface WaveVerdict {
  tripped: string | null;
  passed: boolean;
}

function judgeWave(spec: CampaignSpec, index: number, w: WaveCounts, rolling: boolean): WaveVerdict {
  // Acknowledged failures leave the wave: the operator looked at them and chose to go on.
  const considered = waveSize(w) - w.acknowledgedFailed;
  const failed = w.failed - w.acknowledgedFailed;
  if (considered <= 0) return { tripped: null, passed: true };
  if (failed / considered > spec.maxFailures + EPSILON) {
    return { tripped: `wave ${index + 1}: ${failed} of ${considered} devices failed (more than ${spec.maxFailures * 100}%)`, passed: false };
  }
  const needed = Math.ceil(spec.success * considered - EPSILON);
  if (rolling && w.succeeded + w.assigned < needed) {
    return {
      tripped: `wave ${index + 1}: at most ${w.succeeded + w.assigned} of ${considered} devices can still succeed, ${needed} needed (${spec.success * 100}%)`,
      passed: false,
    };
  }
  return { tripped: null, passed: w.succeeded >= needed };
}

function failureStep(spec: CampaignSpec, reason: string): CampaignStep {
  return spec.onFailure === 'pause' ? { kind: 'pause', reason } : { kind: 'rollback', reason };
}

export function planCampaign(spec: CampaignSpec, progress: CampaignProgress, counts: FleetCounts, now: number): CampaignStep[] {
  if (progress.status !== 'running') return [];

  const timeoutCutoff = now - spec.deviceTimeoutMs;
  if (counts.waves.some((w) => w.assigned > 0 && w.oldestAssignedAt !== null && w.oldestAssignedAt <= timeoutCutoff)) {
    return [{ kind: 'mark-failed', reason: 'timeout', assignedBefore: timeoutCutoff }];
  }

  const soaking = progress.soakUntil !== null;
  // A device can fail after its wave passed (a late crash, a rollback): every wave reached so far counts.
  for (let i = 0; i <= progress.currentWave && i < counts.waves.length; i++) {
    const rolling = i === progress.currentWave && !soaking;
    const verdict = judgeWave(spec, i, counts.waves[i], rolling);
    if (verdict.tripped !== null) {
      return [failureStep(spec, verdict.tripped)];
    }
  }

  const steps: CampaignStep[] = [];
  let wave = progress.currentWave;
  if (soaking) {
    if (now < (progress.soakUntil as number)) return [];
    wave += 1;
    steps.push({ kind: 'advance-wave', wave });
  }

  const fleet = fleetSize(counts);
  const targets = waveTargets(spec.waves, fleet);
  const assignedSoFar = fleet - counts.pending;
  for (;;) {
    const w = counts.waves[wave] ?? EMPTY_WAVE;
    // Topping up to the cumulative target also places late joiners: a grown fleet raises the target.
    const toAssign = Math.max(0, Math.min(targets[wave] - assignedSoFar, counts.pending));
    if (toAssign > 0) {
      const state = spec.window ? windowState(spec.window, now) : null;
      if (state && !state.open) return [...steps, { kind: 'wait-window', opensAt: state.opensAt }];
      return [...steps, { kind: 'assign-wave', wave, count: toAssign }];
    }
    const verdict = judgeWave(spec, wave, w, true);
    if (verdict.tripped !== null) return [...steps, failureStep(spec, verdict.tripped)];
    if (!verdict.passed) return steps;
    if (wave === spec.waves.length - 1) return [...steps, { kind: 'complete' }];
    if (spec.soakMs > 0 && waveSize(w) > 0) return [...steps, { kind: 'start-soak', wave, until: now + spec.soakMs }];
    wave += 1;
    steps.push({ kind: 'advance-wave', wave });
  }
}
