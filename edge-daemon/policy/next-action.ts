import { backoffDelay, type BackoffPolicy } from '../../common/backoff.js';
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
  /** Failures so far, less one (0 after the first): the next delay grows from it. */
  attempt: number;
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

/** 5 s doubling to 5 min; half of each delay is random, so a fleet that failed together does not retry in step. */
export const RETRY_BACKOFF: BackoffPolicy = { baseMs: 5_000, capMs: 300_000, jitter: 0.5 };

/**
 * After a swap did not commit. A failed release (download, engine) is retried (`RETRY_BACKOFF`);
 * a rolled-back one never is (it waits for a higher sequence), and it ends any retry that led to it.
 */
export function retryAfter(outcome: SwapOutcome, release: Release, previous: Retry | undefined, now: number, random: () => number = Math.random): Retry | undefined {
  if (outcome === 'rolled-back') return undefined;
  const attempt = previous ? previous.attempt + 1 : 0;
  return { release, at: now + backoffDelay(RETRY_BACKOFF, attempt, random), attempt };
}
