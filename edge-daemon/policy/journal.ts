import type { StepKind } from '../reconcile/planner.js';
import type { Release } from '../reconcile/spec.js';
import type { Journal } from '../state.js';

/**
 * The journal's transitions (`release.json`). The daemon writes the journal only through `advance`,
 * and persists it before the effect it announces, so whatever a crash interrupts, the journal says
 * what was under way and `nextAction` knows how to finish it.
 */

/** How a swap that did not commit ends: `rolled-back` waits for a newer release, `failed` is retried. */
export type SwapOutcome = 'rolled-back' | 'failed';

/** settled: nothing under way; swapping: a swap towards `inflight.target`; rolling-back: undoing it. */
export type JournalState = 'settled' | 'swapping' | 'rolling-back';

export type JournalEvent =
  /** A swap starts, or starts over from its plan (a retry, a resume after a crash). */
  | { kind: 'begin'; target: Release; at: string }
  /** Before each step of a swap: a crash after this replays from a plan of what the engine shows. */
  | { kind: 'step'; index: number; step: StepKind }
  /** The target is in place and healthy: it becomes current, the old current previous. */
  | { kind: 'commit'; sequence: number }
  /** The target already ran (same content, same sequence): nothing to commit. */
  | { kind: 'settle' }
  /** The swap failed: undo it, and remember how that ends in case the undo is interrupted. */
  | { kind: 'roll-back'; outcome: SwapOutcome; reason: string }
  /** The current release runs again; the target's failure is kept for reports and retries. */
  | { kind: 'restored'; sequence: number; outcome: SwapOutcome; reason: string };

type EventOf<K extends JournalEvent['kind']> = Extract<JournalEvent, { kind: K }>;
type Inflight = NonNullable<Journal['inflight']>;

/** Reasons reach the report and the journal; a container's log tail must not make either huge. */
export const MAX_REASON = 8000;

export function journalState(j: Journal): JournalState {
  if (!j.inflight) return 'settled';
  return j.inflight.rollingBack ? 'rolling-back' : 'swapping';
}

function withInflight(j: Journal, change: (f: Inflight) => Inflight): Journal {
  return j.inflight ? { ...j, inflight: change(j.inflight) } : j;
}

const TRANSITIONS: { [K in JournalEvent['kind']]: { from: readonly JournalState[]; allowed?: (j: Journal, e: EventOf<K>) => boolean; next: (j: Journal, e: EventOf<K>) => Journal } } = {
  // A newer document may arrive while an undo waits for the engine; the new swap plans from the
  // engine as it is, and its own failure restores the current release just the same.
  begin: {
    from: ['settled', 'swapping', 'rolling-back'],
    next: (j, e) => ({
      ...j,
      lastSequence: Math.max(j.lastSequence ?? -1, e.target.sequence),
      inflight: { target: e.target, step: -1, kind: 'plan', rollingBack: false, startedAt: e.at },
    }),
  },
  step: { from: ['swapping'], next: (j, e) => withInflight(j, (f) => ({ ...f, step: e.index, kind: e.step })) },
  commit: {
    from: ['swapping'],
    allowed: (j, e) => j.inflight?.target.sequence === e.sequence,
    next: (j) => (j.inflight ? { ...j, previous: j.current, current: j.inflight.target, inflight: null, failure: null } : j),
  },
  settle: { from: ['swapping'], next: (j) => ({ ...j, inflight: null }) },
  'roll-back': {
    from: ['swapping', 'rolling-back'],
    next: (j, e) => withInflight(j, (f) => ({ ...f, rollingBack: true, rollback: { phase: e.outcome, reason: e.reason.slice(0, MAX_REASON) } })),
  },
  // Also from settled: a failure after the commit was written (a full disk) is restored the same way.
  restored: {
    from: ['settled', 'swapping', 'rolling-back'],
    next: (j, e) => ({ ...j, inflight: null, failure: { sequence: e.sequence, phase: e.outcome, error: e.reason.slice(0, MAX_REASON) } }),
  },
};

/** The journal after `event`, or null when the event makes no sense in the journal's state. */
export function advance<K extends JournalEvent['kind']>(journal: Journal, event: EventOf<K>): Journal | null {
  const t = TRANSITIONS[event.kind] as (typeof TRANSITIONS)[K];
  if (!t.from.includes(journalState(journal))) return null;
  if (t.allowed && !t.allowed(journal, event)) return null;
  return t.next(journal, event);
}
