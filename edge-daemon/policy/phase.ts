import type { ReleasePhase } from '../../protocol/device.js';
import type { StepKind } from '../reconcile/planner.js';
import type { Journal } from '../state.js';
import type { SwapOutcome } from './journal.js';

/**
 * The phase and error the daemon reports, changed only by the events below. The phase is not
 * persisted: after a restart it is derived from the journal (`standingAtStart`).
 */
export interface Standing {
  phase: ReleasePhase;
  error?: string;
}

/** Marks an error that only says the engine could not be reconciled; it clears once the engine answers. */
const RECONCILE_FAILED = 'reconcile failed: ';

export type PhaseEvent =
  /** A swap starts or resumes: earlier errors are about an older attempt. */
  | { kind: 'begin' }
  /** Before each step of a swap; `downloads` when that step fetches missing images. */
  | { kind: 'step'; step: StepKind; downloads: boolean }
  | { kind: 'committed' }
  /** The target already ran: nothing to commit. */
  | { kind: 'settled' }
  | { kind: 'rolling-back'; reason: string }
  /** The undo could not finish (often the engine is down); the journal resumes it on the next tick. */
  | { kind: 'restore-failed'; error: string }
  | { kind: 'restored'; outcome: SwapOutcome; reason: string }
  /** A document was refused: nothing runs differently, the phase stays, the reason is reported. */
  | { kind: 'refused'; error: string }
  | { kind: 'reconcile-failed'; error: string }
  /** A reconcile of the current release succeeded: an engine outage is over. */
  | { kind: 'reconciled'; failure: string | undefined };

type EventOf<K extends PhaseEvent['kind']> = Extract<PhaseEvent, { kind: K }>;

/**
 * Each event's effect, and whether it is reported even when nothing visible changed (every swap
 * event is; a reconcile tick every 15 s reports only a change).
 */
const TRANSITIONS: { [K in PhaseEvent['kind']]: { report: 'always' | 'on-change'; next: (s: Standing, e: EventOf<K>) => Standing } } = {
  begin: { report: 'always', next: () => ({ phase: 'applying' }) },
  step: {
    report: 'on-change',
    next: (s, e) => {
      if (e.step === 'ensure-images' && e.downloads) return { phase: 'downloading' };
      if (s.phase === 'downloading' && e.step !== 'ensure-images') return { phase: 'downloaded' };
      return s;
    },
  },
  committed: { report: 'always', next: () => ({ phase: 'running' }) },
  settled: { report: 'always', next: () => ({ phase: 'running' }) },
  'rolling-back': { report: 'always', next: (_s, e) => ({ phase: 'applying', error: e.reason }) },
  'restore-failed': { report: 'always', next: (_s, e) => ({ phase: 'failed', error: e.error }) },
  restored: { report: 'always', next: (_s, e) => ({ phase: e.outcome, error: e.reason }) },
  refused: { report: 'always', next: (s, e) => ({ phase: s.phase, error: e.error }) },
  'reconcile-failed': { report: 'on-change', next: (s, e) => ({ phase: s.phase, error: `${RECONCILE_FAILED}${e.error}` }) },
  reconciled: {
    report: 'on-change',
    next: (s, e) => (s.error?.startsWith(RECONCILE_FAILED) ? { phase: s.phase, error: e.failure } : s),
  },
};

/** The standing after `event`, and whether a report should say so. */
export function phaseAfter<K extends PhaseEvent['kind']>(s: Standing, event: EventOf<K>): { standing: Standing; report: boolean } {
  const t = TRANSITIONS[event.kind] as (typeof TRANSITIONS)[K];
  const standing = t.next(s, event);
  const changed = standing.phase !== s.phase || standing.error !== s.error;
  return { standing, report: t.report === 'always' || changed };
}

/** After a restart: the last failure is reported until a newer document arrives. */
export function standingAtStart(journal: Journal): Standing {
  if (journal.failure) return { phase: journal.failure.phase, error: journal.failure.error };
  return { phase: journal.current ? 'running' : 'idle' };
}
