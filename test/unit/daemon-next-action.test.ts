import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { advance, type JournalEvent } from '../../edge-daemon/policy/journal.js';
import { nextAction, retryAfter, type NextAction, type Retry } from '../../edge-daemon/policy/next-action.js';
import type { Release } from '../../edge-daemon/reconcile/spec.js';
import { EMPTY_JOURNAL, StateDir, type Journal } from '../../edge-daemon/state.js';

const AT = '2026-01-01T00:00:00.000Z';
const NOW = 1_800_000_000_000;

function release(sequence: number): Release {
  return { sequence, name: 'site', version: `1.${sequence}`, digest: 'sha256:' + 'a'.repeat(64), spec: { name: 'site', version: `1.${sequence}`, services: {}, volumes: {}, update: { strategy: 'download-then-swap', healthTimeoutMs: 1000 } } };
}

/** Replays events as the daemon does, writing the journal after each; a crash may come after any of them. */
async function crashPoints(start: Journal, events: JournalEvent[]): Promise<{ after: string; reloaded: Journal }[]> {
  const state = new StateDir(await mkdtemp(join(tmpdir(), 'berth-crash-')));
  await state.init();
  let j = start;
  const out: { after: string; reloaded: Journal }[] = [];
  for (const e of events) {
    const next = advance(j, e);
    if (!next) throw new Error(`${e.kind} refused`);
    j = next;
    await state.saveJournal(j);
    out.push({ after: e.kind === 'step' ? `step ${e.step}` : e.kind, reloaded: await state.loadJournal() });
  }
  return out;
}

describe('nextAction after a crash: whatever the journal says was under way finishes first', () => {
  it('settled journals: repair the current release (none before the first commit)', () => {
    expect(nextAction(EMPTY_JOURNAL, undefined, NOW)).toEqual({ kind: 'repair', current: null });
    const j: Journal = { ...EMPTY_JOURNAL, current: release(1), lastSequence: 2, failure: { sequence: 2, phase: 'failed', error: 'x' } };
    // A retry is volatile: after a restart a failed release is retried when its document comes again.
    expect(nextAction(j, undefined, NOW)).toEqual({ kind: 'repair', current: release(1) });
  });

  it('a crash at every point of a swap: before the commit it resumes the swap, after it repairs the new current', async () => {
    const start: Journal = { ...EMPTY_JOURNAL, current: release(1), lastSequence: 1 };
    const steps = ['ensure-images', 'create-volume', 'create', 'stop', 'start', 'wait-healthy'] as const;
    const points = await crashPoints(start, [
      { kind: 'begin', target: release(2), at: AT },
      ...steps.map((step, index): JournalEvent => ({ kind: 'step', index, step })),
      { kind: 'commit', sequence: 2 },
    ]);
    const expected: Record<string, NextAction> = {};
    for (const p of points.slice(0, -1)) expected[p.after] = { kind: 'resume-swap', target: release(2) };
    expected.commit = { kind: 'repair', current: release(2) };
    expect(Object.fromEntries(points.map((p) => [p.after, nextAction(p.reloaded, undefined, NOW)]))).toEqual(expected);
  });

  it('a crash at every point of a rollback: it finishes the rollback, ending as it was going to', async () => {
    const start: Journal = { ...EMPTY_JOURNAL, current: release(1), lastSequence: 1 };
    for (const outcome of ['rolled-back', 'failed'] as const) {
      const points = await crashPoints(start, [
        { kind: 'begin', target: release(2), at: AT },
        { kind: 'step', index: 0, step: 'wait-healthy' },
        { kind: 'roll-back', outcome, reason: `release site@1.2 ${outcome}` },
        { kind: 'restored', sequence: 2, outcome, reason: `release site@1.2 ${outcome}` },
      ]);
      const byPoint = Object.fromEntries(points.map((p) => [p.after, nextAction(p.reloaded, undefined, NOW)]));
      expect(byPoint['roll-back']).toEqual({ kind: 'finish-rollback', target: release(2), outcome, reason: `release site@1.2 ${outcome}` });
      expect(byPoint.restored).toEqual({ kind: 'repair', current: release(1) });
      expect(points.at(-1)?.reloaded.failure).toEqual({ sequence: 2, phase: outcome, error: `release site@1.2 ${outcome}` });
    }
  });

  it('a journal that says only "rolling back" (written before outcomes were recorded) ends as a health rollback', () => {
    const j: Journal = { ...EMPTY_JOURNAL, current: release(1), lastSequence: 2, inflight: { target: release(2), step: 2, kind: 'start', rollingBack: true, startedAt: AT } };
    expect(nextAction(j, undefined, NOW)).toEqual({ kind: 'finish-rollback', target: release(2), outcome: 'rolled-back', reason: 'release site@1.2 rolled back' });
  });

  it('an interrupted swap comes before a due retry', () => {
    const j: Journal = { ...EMPTY_JOURNAL, lastSequence: 3, inflight: { target: release(3), step: -1, kind: 'plan', rollingBack: false, startedAt: AT } };
    expect(nextAction(j, { release: release(2), at: NOW - 1, attempt: 0 }, NOW)).toEqual({ kind: 'resume-swap', target: release(3) });
  });
});

describe('retry timing', () => {
  const j: Journal = { ...EMPTY_JOURNAL, current: release(1), lastSequence: 2 };

  it('a retry is taken on the first tick at or after its time, not before', () => {
    const retry: Retry = { release: release(2), at: NOW + 4000, attempt: 0 };
    expect(nextAction(j, retry, NOW + 3999)).toEqual({ kind: 'repair', current: release(1) });
    expect(nextAction(j, retry, NOW + 4000)).toEqual({ kind: 'retry', release: release(2) });
    expect(nextAction(j, retry, NOW + 60_000)).toEqual({ kind: 'retry', release: release(2) });
  });

  it('a failed release is retried after 5 s, doubling to 5 min, jittered to 50–100 % of the delay', () => {
    const delays: number[] = [];
    let retry: Retry | undefined;
    for (let i = 0; i < 9; i++) {
      retry = retryAfter('failed', release(2), retry, NOW, () => 1);
      delays.push((retry?.at ?? NOW) - NOW);
    }
    expect(delays).toEqual([5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000]);
    expect(retryAfter('failed', release(2), undefined, NOW, () => 0)?.at).toBe(NOW + 2_500);
    expect(retryAfter('failed', release(2), undefined, NOW, () => 0.5)?.at).toBe(NOW + 3_750);
  });

  it('a rolled-back release is never retried, and a rollback ends the retries that led to it', () => {
    expect(retryAfter('rolled-back', release(2), undefined, NOW)).toBeUndefined();
    expect(retryAfter('rolled-back', release(2), { release: release(2), at: NOW - 1, attempt: 2 }, NOW)).toBeUndefined();
  });
});
