import { describe, expect, it } from 'vitest';
import { phaseAfter, standingAtStart, type PhaseEvent, type Standing } from '../../edge-daemon/policy/phase.js';
import type { Release } from '../../edge-daemon/reconcile/spec.js';
import { EMPTY_JOURNAL } from '../../edge-daemon/state.js';

const r1: Release = { sequence: 1, name: 'site', version: '1.1', digest: 'sha256:' + 'a'.repeat(64), spec: { name: 'site', version: '1.1', services: {}, volumes: {}, update: { strategy: 'download-then-swap', healthTimeoutMs: 1000 } } };

/** Runs events from `start`, collecting each standing and whether it was reported. */
function run(start: Standing, events: PhaseEvent[]): { standing: Standing; report: boolean }[] {
  let s = start;
  return events.map((e) => {
    const out = phaseAfter(s, e);
    s = out.standing;
    return out;
  });
}

describe('phases: derived from the journal at start, then changed only by events', () => {
  it('at start: idle, running, or the last failure with its error', () => {
    expect(standingAtStart(EMPTY_JOURNAL)).toEqual({ phase: 'idle' });
    expect(standingAtStart({ ...EMPTY_JOURNAL, current: r1, lastSequence: 1 })).toEqual({ phase: 'running' });
    expect(standingAtStart({ ...EMPTY_JOURNAL, current: r1, lastSequence: 2, failure: { sequence: 2, phase: 'rolled-back', error: 'unhealthy' } })).toEqual({ phase: 'rolled-back', error: 'unhealthy' });
  });

  it('a swap that downloads: applying → downloading → downloaded → running, each reported', () => {
    const seen = run({ phase: 'running', error: 'an older failure' }, [
      { kind: 'begin' },
      { kind: 'step', step: 'ensure-images', downloads: true },
      { kind: 'step', step: 'create', downloads: false },
      { kind: 'step', step: 'start', downloads: false },
      { kind: 'step', step: 'commit', downloads: false },
      { kind: 'committed' },
    ]);
    expect(seen.map((s) => s.standing)).toEqual([{ phase: 'applying' }, { phase: 'downloading' }, { phase: 'downloaded' }, { phase: 'downloaded' }, { phase: 'downloaded' }, { phase: 'running' }]);
    expect(seen.map((s) => s.report)).toEqual([true, true, true, false, false, true]);
  });

  it('images already local: no download phases', () => {
    const seen = run({ phase: 'running' }, [{ kind: 'begin' }, { kind: 'step', step: 'ensure-images', downloads: false }, { kind: 'step', step: 'start', downloads: false }, { kind: 'settled' }]);
    expect(seen.map((s) => s.standing.phase)).toEqual(['applying', 'applying', 'applying', 'running']);
  });

  it('a rollback: applying with the reason, then the outcome with it; a failed undo says failed', () => {
    expect(run({ phase: 'downloaded' }, [{ kind: 'rolling-back', reason: 'unhealthy' }, { kind: 'restored', outcome: 'rolled-back', reason: 'unhealthy' }]).map((s) => s.standing)).toEqual([
      { phase: 'applying', error: 'unhealthy' },
      { phase: 'rolled-back', error: 'unhealthy' },
    ]);
    expect(phaseAfter({ phase: 'applying', error: 'x' }, { kind: 'restore-failed', error: 'x; restoring failed too' }).standing).toEqual({ phase: 'failed', error: 'x; restoring failed too' });
  });

  it('a refusal keeps the phase and reports the reason', () => {
    expect(phaseAfter({ phase: 'running' }, { kind: 'refused', error: 'deployment document rejected (expired): …' })).toEqual({ standing: { phase: 'running', error: 'deployment document rejected (expired): …' }, report: true });
  });

  it('an engine outage is reported once, and cleared (back to the kept failure) when a reconcile succeeds', () => {
    const seen = run({ phase: 'failed', error: 'release site@1.2 failed: download' }, [
      { kind: 'reconcile-failed', error: 'Docker engine unreachable at unix:///x (ENOENT)' },
      { kind: 'reconcile-failed', error: 'Docker engine unreachable at unix:///x (ENOENT)' },
      { kind: 'reconciled', failure: 'release site@1.2 failed: download' },
      { kind: 'reconciled', failure: 'release site@1.2 failed: download' },
    ]);
    expect(seen.map((s) => s.standing)).toEqual([
      { phase: 'failed', error: 'reconcile failed: Docker engine unreachable at unix:///x (ENOENT)' },
      { phase: 'failed', error: 'reconcile failed: Docker engine unreachable at unix:///x (ENOENT)' },
      { phase: 'failed', error: 'release site@1.2 failed: download' },
      { phase: 'failed', error: 'release site@1.2 failed: download' },
    ]);
    expect(seen.map((s) => s.report)).toEqual([true, false, true, false]);
  });

  it('a successful reconcile leaves other errors alone', () => {
    expect(phaseAfter({ phase: 'running', error: 'deployment document rejected (replayed): …' }, { kind: 'reconciled', failure: undefined })).toEqual({
      standing: { phase: 'running', error: 'deployment document rejected (replayed): …' },
      report: false,
    });
  });
});
