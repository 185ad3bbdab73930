import type { Release } from '../reconcile/spec.js';
import { releaseLabel } from '../reconcile/spec.js';
import type { Journal } from '../state.js';
import type { SwapOutcome } from './journal.js';

/**
 * What the daemon does on each reconcile tick, and first of all after a start (a crash, a power
 * cut, a plain restart): whatever the journal says was interrupted finishes before anything new.
 */

/** A release that failed for a reason that may heal, and when to try it again. */
export interface Retry {
  release: Release;
  /** Epoch ms. */
  at: number;
  /** The delay this retry was scheduled with; the next one doubles it. */
  delay: number;
}

export type NextAction =
  /** An undo was interrupted: finish it, ending as it was going to. */
  | { kind: 'finish-rollback'; target: Release; outcome: SwapOutcome; reason: string }
  /** A swap was interrupted: plan it again from what the engine shows and carry it through. */
  | { kind: 'resume-swap'; target: Release }
  | { kind: 'retry'; release: Release }
  /** Nothing under way: bring the engine back to the current release (drift, adoption, repair). */
  | { kind: 'repair'; current: Release | null };

export function nextAction(journal: Journal, retry: Retry | undefined, now: number): NextAction {
  const inflight = journal.inflight;
  if (inflight?.rollingBack) {
    // Journals written before the outcome was recorded held only rolling-back: a health failure.
    const how = inflight.rollback ?? { phase: 'rolled-back', reason: `release ${releaseLabel(inflight.target)} rolled back` };
    return { kind: 'finish-rollback', target: inflight.target, outcome: how.phase, reason: how.reason };
  }
  if (inflight) return { kind: 'resume-swap', target: inflight.target };
  if (retry && now >= retry.at) return { kind: 'retry', release: retry.release };
  return { kind: 'repair', current: journal.current };
}

export const RETRY_FIRST_MS = 5_000;
export const RETRY_CAP_MS = 300_000;

/**
 * After a swap did not commit. A failed release (download, engine) is retried, 5 s doubling to
 * 5 min, jittered to 50–100 % so a fleet does not retry in step; a rolled-back one never is (it
 * waits for a higher sequence), and it ends any retry that led to it.
 */
export function retryAfter(outcome: SwapOutcome, release: Release, previous: Retry | undefined, now: number, random: () => number = Math.random): Retry | undefined {
  if (outcome === 'rolled-back') return undefined;
  const delay = previous ? Math.min(previous.delay * 2, RETRY_CAP_MS) : RETRY_FIRST_MS;
  return { release, at: now + delay * (0.5 + random() * 0.5), delay };
}
