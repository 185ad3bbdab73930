import { describe, expect, it } from 'vitest';
import { planCampaign, waveTargets, type CampaignProgress, type FleetCounts, type WaveCounts } from '../../control-plane/campaigns/planner.js';
import { parseWaves } from '../../common/grammar.js';
import type { CampaignSpec } from '../../control-plane/campaigns/spec.js';

const NOW = Date.parse('2026-11-26T12:00:00Z');
const MIN = 60_000;

function spec(overrides: Partial<CampaignSpec> = {}): CampaignSpec {
  return {
    release: 'gateway@2.0.0',
    selector: '',
    waves: parseWaves(['1', '10%', '100%']),
    success: 0.95,
    maxFailures: 0.1,
    deviceTimeoutMs: 10 * MIN,
    soakMs: 5 * MIN,
    window: null,
    onFailure: 'pause',
    ...overrides,
  };
}

function running(overrides: Partial<CampaignProgress> = {}): CampaignProgress {
  return { status: 'running', currentWave: 0, soakUntil: null, failuresAcknowledgedAt: null, ...overrides };
}

function wave(overrides: Partial<WaveCounts> = {}): WaveCounts {
  return { assigned: 0, succeeded: 0, failed: 0, acknowledgedFailed: 0, oldestAssignedAt: null, ...overrides };
}

function fleet(pending: number, waves: WaveCounts[] = []): FleetCounts {
  return { pending, waves };
}

describe('waveTargets', () => {
  it('turns counts and percentages into cumulative targets, rounding percentages up', () => {
    expect(waveTargets(parseWaves(['1', '10%', '100%']), 1000)).toEqual([1, 100, 1000]);
    expect(waveTargets(parseWaves(['1', '10%', '100%']), 15)).toEqual([1, 2, 15]);
    expect(waveTargets(parseWaves(['33%', '66%', '100%']), 10)).toEqual([4, 7, 10]);
    expect(waveTargets(parseWaves(['10%', '100%']), 3)).toEqual([1, 3]);
    expect(waveTargets(parseWaves(['1', '12.5%', '100%']), 1000)).toEqual([1, 125, 1000]);
    expect(waveTargets(parseWaves(['1', '12.5%', '100%']), 10)).toEqual([1, 2, 10]);
  });

  it('caps counts at the fleet and never lets a target shrink', () => {
    expect(waveTargets(parseWaves(['5', '50']), 20)).toEqual([5, 20]);
    expect(waveTargets(parseWaves(['50', '10%', '100%']), 200)).toEqual([50, 50, 200]);
    expect(waveTargets(parseWaves(['1', '100%']), 0)).toEqual([0, 0]);
  });
});

describe('planCampaign', () => {
  it('does nothing unless running', () => {
    for (const status of ['draft', 'paused', 'completed', 'failed', 'aborted'] as const) {
      expect(planCampaign(spec(), running({ status }), fleet(100), NOW)).toEqual([]);
    }
  });

  it('assigns the first wave of a fresh campaign', () => {
    expect(planCampaign(spec(), running(), fleet(100), NOW)).toEqual([{ kind: 'assign-wave', wave: 0, count: 1 }]);
  });

  it('waits while a wave is in flight and below the success share', () => {
    const counts = fleet(90, [wave({ succeeded: 1 }), wave({ assigned: 4, succeeded: 5, oldestAssignedAt: NOW - MIN })]);
    expect(planCampaign(spec(), running({ currentWave: 1 }), counts, NOW)).toEqual([]);
  });

  it('starts the soak when a wave reaches the success share', () => {
    const counts = fleet(99, [wave({ succeeded: 1 })]);
    expect(planCampaign(spec(), running(), counts, NOW)).toEqual([{ kind: 'start-soak', wave: 0, until: NOW + 5 * MIN }]);
  });

  it('passes a wave at exactly the success share with devices still in flight', () => {
    // 19 of 20 is exactly 95%.
    const counts = fleet(0, [wave({ succeeded: 1 }), wave({ succeeded: 1 }), wave({ succeeded: 19, assigned: 1, oldestAssignedAt: NOW - MIN })]);
    const small = spec({ waves: parseWaves(['1', '2', '100%']) });
    expect(planCampaign(small, running({ currentWave: 2 }), { pending: 0, waves: [wave({ succeeded: 1 }), wave({ succeeded: 1 }), wave({ succeeded: 19, assigned: 1, oldestAssignedAt: NOW - MIN })] }, NOW)).toEqual([
      { kind: 'complete' },
    ]);
    const eighteen = { pending: 0, waves: [counts.waves[0], counts.waves[1], wave({ succeeded: 18, assigned: 2, oldestAssignedAt: NOW - MIN })] };
    expect(planCampaign(small, running({ currentWave: 2 }), eighteen, NOW)).toEqual([]);
  });

  it('keeps soaking until the soak ends, then advances and assigns the next wave', () => {
    const counts = fleet(99, [wave({ succeeded: 1 })]);
    const soaking = running({ soakUntil: NOW + MIN });
    expect(planCampaign(spec(), soaking, counts, NOW)).toEqual([]);
    expect(planCampaign(spec(), soaking, counts, NOW + MIN)).toEqual([
      { kind: 'advance-wave', wave: 1 },
      { kind: 'assign-wave', wave: 1, count: 9 },
    ]);
  });

  it('advances without soaking when the soak is zero, through waves that round to nothing', () => {
    const noSoak = spec({ soakMs: 0, waves: parseWaves(['1', '2', '50%', '100%']) });
    // Fleet of 3: targets 1, 2, 2, 3: the third wave is empty and passes at once.
    const counts = fleet(1, [wave({ succeeded: 1 }), wave({ succeeded: 1 })]);
    expect(planCampaign(noSoak, running({ currentWave: 1 }), counts, NOW)).toEqual([
      { kind: 'advance-wave', wave: 2 },
      { kind: 'advance-wave', wave: 3 },
      { kind: 'assign-wave', wave: 3, count: 1 },
    ]);
  });

  it('completes after the last wave passes, without a soak', () => {
    const counts = fleet(0, [wave({ succeeded: 1 }), wave({ succeeded: 9 }), wave({ succeeded: 90 })]);
    expect(planCampaign(spec(), running({ currentWave: 2 }), counts, NOW)).toEqual([{ kind: 'complete' }]);
  });

  it('completes a campaign whose selector matched no device', () => {
    expect(planCampaign(spec(), running(), fleet(0), NOW)).toEqual([
      { kind: 'advance-wave', wave: 1 },
      { kind: 'advance-wave', wave: 2 },
      { kind: 'complete' },
    ]);
  });

  it('marks devices failed once the device timeout passes', () => {
    const counts = fleet(99, [wave({ assigned: 1, oldestAssignedAt: NOW - 10 * MIN })]);
    expect(planCampaign(spec(), running(), counts, NOW)).toEqual([{ kind: 'mark-failed', reason: 'timeout', assignedBefore: NOW - 10 * MIN }]);
    expect(planCampaign(spec(), running(), counts, NOW - 1)).toEqual([]);
  });

  it('pauses when failures exceed the share, and rolls back when told to', () => {
    const counts = fleet(80, [wave({ succeeded: 1 }), wave({ succeeded: 7, failed: 2, assigned: 10, oldestAssignedAt: NOW - MIN })]);
    const steps = planCampaign(spec(), running({ currentWave: 1 }), counts, NOW);
    expect(steps).toHaveLength(1);
    expect(steps[0].kind).toBe('pause');
    expect(planCampaign(spec({ onFailure: 'rollback' }), running({ currentWave: 1 }), counts, NOW)[0].kind).toBe('rollback');
  });

  it('tolerates failures up to the share', () => {
    const counts = fleet(80, [wave({ succeeded: 1 }), wave({ succeeded: 18, failed: 2 })]);
    expect(planCampaign(spec({ success: 0.9, maxFailures: 0.1, soakMs: 0 }), running({ currentWave: 1 }), counts, NOW)).toEqual([
      { kind: 'advance-wave', wave: 2 },
      { kind: 'assign-wave', wave: 2, count: 80 },
    ]);
  });

  it('trips when the success share can no longer be reached', () => {
    // One canary failed: 0 of 1 can succeed, though no failure share (maxFailures 1 of 1) tripped.
    const counts = fleet(99, [wave({ failed: 1 })]);
    const steps = planCampaign(spec({ maxFailures: 0.99 }), running(), counts, NOW);
    expect(steps.map((s) => s.kind)).toEqual(['pause']);
  });

  it('counts failures in waves that already passed', () => {
    const counts = fleet(90, [wave({ failed: 1 }), wave({ succeeded: 9, oldestAssignedAt: null })]);
    expect(planCampaign(spec(), running({ currentWave: 1, soakUntil: NOW + MIN }), counts, NOW).map((s) => s.kind)).toEqual(['pause']);
  });

  it('forgets acknowledged failures after a resume', () => {
    const counts = fleet(90, [wave({ failed: 1, acknowledgedFailed: 1 }), wave({ succeeded: 9 })]);
    expect(planCampaign(spec(), running({ currentWave: 1, failuresAcknowledgedAt: NOW - MIN }), counts, NOW)).toEqual([
      { kind: 'start-soak', wave: 1, until: NOW + 5 * MIN },
    ]);
  });

  it('tops up the running wave when late joiners grow the fleet', () => {
    // 100% wave of 10 devices; two newly enrolled devices join.
    const counts = fleet(2, [wave({ succeeded: 1 }), wave({ succeeded: 1 }), wave({ succeeded: 5, assigned: 3, oldestAssignedAt: NOW - MIN })]);
    expect(planCampaign(spec(), running({ currentWave: 2 }), counts, NOW)).toEqual([{ kind: 'assign-wave', wave: 2, count: 2 }]);
  });

  it('leaves late joiners for a later wave while the current target is met', () => {
    // Fleet grows from 100 to 101: wave 2 (10%) target rises 10 → 11, so one pending device joins now.
    const counts = fleet(91, [wave({ succeeded: 1 }), wave({ succeeded: 9 })]);
    expect(planCampaign(spec(), running({ currentWave: 1 }), counts, NOW)).toEqual([{ kind: 'assign-wave', wave: 1, count: 1 }]);
    const notGrown = fleet(89, [wave({ succeeded: 1 }), wave({ succeeded: 9, assigned: 1, oldestAssignedAt: NOW })]);
    expect(planCampaign(spec({ success: 0.9 }), running({ currentWave: 1 }), notGrown, NOW)).toEqual([{ kind: 'start-soak', wave: 1, until: NOW + 5 * MIN }]);
  });

  describe('maintenance windows', () => {
    // Nightly 02:00-04:00 in Berlin (CET in November: 01:00-03:00 UTC).
    const nightly = spec({ window: { cron: '0 2 * * *', durationMs: 120 * MIN, tz: 'Europe/Berlin' } });

    it('waits for the window before assigning', () => {
      const at = Date.parse('2026-11-26T12:00:00Z');
      expect(planCampaign(nightly, running(), fleet(100), at)).toEqual([{ kind: 'wait-window', opensAt: Date.parse('2026-11-27T01:00:00Z') }]);
    });

    it('assigns while the window is open', () => {
      const at = Date.parse('2026-11-27T02:30:00Z');
      expect(planCampaign(nightly, running(), fleet(100), at)).toEqual([{ kind: 'assign-wave', wave: 0, count: 1 }]);
    });

    it('still judges, soaks and completes outside the window', () => {
      const at = Date.parse('2026-11-26T12:00:00Z');
      expect(planCampaign(nightly, running(), fleet(99, [wave({ succeeded: 1 })]), at)).toEqual([{ kind: 'start-soak', wave: 0, until: at + 5 * MIN }]);
      expect(planCampaign(nightly, running({ soakUntil: at }), fleet(99, [wave({ succeeded: 1 })]), at)).toEqual([
        { kind: 'advance-wave', wave: 1 },
        { kind: 'wait-window', opensAt: Date.parse('2026-11-27T01:00:00Z') },
      ]);
    });
  });
});
