import { describe, expect, it } from 'vitest';
import { advance, journalState, MAX_REASON, type JournalEvent, type JournalState } from '../../edge-daemon/policy/journal.js';
import type { Release } from '../../edge-daemon/reconcile/spec.js';
import { EMPTY_JOURNAL, type Journal } from '../../edge-daemon/state.js';

const AT = '2026-01-01T00:00:00.000Z';

function release(sequence: number): Release {
  return { sequence, name: 'site', version: `1.${sequence}`, digest: 'sha256:' + 'a'.repeat(64), spec: { name: 'site', version: `1.${sequence}`, services: {}, volumes: {}, update: { strategy: 'download-then-swap', healthTimeoutMs: 1000 } } };
}

const settled: Journal = { ...EMPTY_JOURNAL, current: release(1), lastSequence: 1 };
const swapping: Journal = { ...settled, lastSequence: 2, inflight: { target: release(2), step: 3, kind: 'start', rollingBack: false, startedAt: AT } };
const rollingBack: Journal = { ...swapping, inflight: { ...swapping.inflight!, rollingBack: true, rollback: { phase: 'rolled-back', reason: 'unhealthy' } } };
const byState: Record<JournalState, Journal> = { settled, swapping, 'rolling-back': rollingBack };

function must(j: Journal | null): Journal {
  if (!j) throw new Error('transition refused');
  return j;
}

describe('journal transitions', () => {
  it('names the state of a journal', () => {
    expect(journalState(EMPTY_JOURNAL)).toBe('settled');
    expect(journalState(swapping)).toBe('swapping');
    expect(journalState(rollingBack)).toBe('rolling-back');
  });

  const events: JournalEvent[] = [
    { kind: 'begin', target: release(3), at: AT },
    { kind: 'step', index: 4, step: 'wait-healthy' },
    { kind: 'commit', sequence: 2 },
    { kind: 'settle' },
    { kind: 'roll-back', outcome: 'failed', reason: 'engine down' },
    { kind: 'restored', sequence: 2, outcome: 'failed', reason: 'engine down' },
  ];
  const allowed: Record<JournalEvent['kind'], JournalState[]> = {
    begin: ['settled', 'swapping', 'rolling-back'],
    step: ['swapping'],
    commit: ['swapping'],
    settle: ['swapping'],
    'roll-back': ['swapping', 'rolling-back'],
    restored: ['settled', 'swapping', 'rolling-back'],
  };
  for (const e of events) {
    for (const state of ['settled', 'swapping', 'rolling-back'] as const) {
      const ok = allowed[e.kind].includes(state);
      it(`${e.kind} from ${state}: ${ok ? 'allowed' : 'refused (null)'}`, () => {
        const next = advance(byState[state], e);
        if (ok) expect(next).not.toBeNull();
        else expect(next).toBeNull();
      });
    }
  }

  it('begin records the target from its plan and raises the last accepted sequence, never lowers it', () => {
    expect(must(advance(settled, { kind: 'begin', target: release(5), at: AT }))).toEqual({
      ...settled,
      lastSequence: 5,
      inflight: { target: release(5), step: -1, kind: 'plan', rollingBack: false, startedAt: AT },
    });
    // A failed release retried below a higher accepted sequence keeps the higher one.
    expect(must(advance({ ...settled, lastSequence: 9 }, { kind: 'begin', target: release(5), at: AT })).lastSequence).toBe(9);
    expect(must(advance(EMPTY_JOURNAL, { kind: 'begin', target: release(0), at: AT })).lastSequence).toBe(0);
  });

  it('step records where the swap is, nothing else', () => {
    expect(must(advance(swapping, { kind: 'step', index: 4, step: 'wait-healthy' })).inflight).toEqual({ ...swapping.inflight, step: 4, kind: 'wait-healthy' });
  });

  it('commit makes the target current, the old current previous, and clears the failure', () => {
    const failedBefore = { ...swapping, failure: { sequence: 2, phase: 'failed' as const, error: 'engine down' } };
    expect(must(advance(failedBefore, { kind: 'commit', sequence: 2 }))).toEqual({ current: release(2), previous: release(1), inflight: null, lastSequence: 2, failure: null });
  });

  it('commit of another sequence than the swap in flight is refused', () => {
    expect(advance(swapping, { kind: 'commit', sequence: 3 })).toBeNull();
  });

  it('settle ends the swap without a commit and keeps the rest', () => {
    expect(must(advance(swapping, { kind: 'settle' }))).toEqual({ ...swapping, inflight: null });
  });

  it('roll-back marks the swap as being undone, with how it ends; the reason is bounded', () => {
    const long = 'x'.repeat(MAX_REASON + 50);
    const next = must(advance(swapping, { kind: 'roll-back', outcome: 'failed', reason: long }));
    expect(next.inflight).toMatchObject({ target: release(2), rollingBack: true, rollback: { phase: 'failed' } });
    expect(next.inflight?.rollback?.reason).toHaveLength(MAX_REASON);
    expect(next.current).toEqual(release(1));
  });

  it('restored ends the undo and keeps the failure (which sequence, how it ended, why)', () => {
    expect(must(advance(rollingBack, { kind: 'restored', sequence: 2, outcome: 'rolled-back', reason: 'unhealthy' }))).toEqual({
      ...settled,
      lastSequence: 2,
      failure: { sequence: 2, phase: 'rolled-back', error: 'unhealthy' },
    });
  });
});
