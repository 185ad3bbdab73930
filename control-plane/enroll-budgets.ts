import { AddressBuckets, type AddressBudget, type Limit, type Taken } from './device-api/enroll-guard.js';

/**
 * The per-address enrollment budgets of `--workers N`, kept by the primary for all workers
 * (cluster.ts). Each worker accepts its own connections (SCHED_NONE), so how an address's requests
 * fall between workers is the kernel's choice: a budget divided between them ran dry on the
 * busiest worker (HTTP 429 at 100,000 devices from two loopback addresses) while the others
 * idled, and a whole budget in each would multiply what an address may send by N.
 *
 * A worker's takes wait for the primary's answer; those asked within one turn of its event loop
 * go as one message (and its refunds with them), so under an enrollment wave the cost is a
 * message per turn, not per request.
 */

export type BudgetMessage =
  | { berth: 'enroll-budget'; id: number; limit: Limit; takes: string[]; refunds: [string, number][] }
  | { berth: 'enroll-budget'; id: number; retryAfterSec: number[] };

export function isBudgetMessage(msg: unknown): msg is BudgetMessage {
  const m = msg as { berth?: unknown; id?: unknown } | null;
  return typeof m === 'object' && m !== null && m.berth === 'enroll-budget' && typeof m.id === 'number';
}

/** A worker's side: an AddressBudget whose takes and refunds the primary settles. */
export function workerEnrollBudget(send: (msg: BudgetMessage) => void, onMessage: (fn: (msg: unknown) => void) => void): AddressBudget {
  let last = 0;
  let takes: { key: string; resolve: (t: Taken) => void }[] = [];
  let refunds = new Map<string, number>();
  let limit: Limit | null = null;
  let flushing = false;
  const waiting = new Map<number, ((t: Taken) => void)[]>();
  onMessage((msg) => {
    if (!isBudgetMessage(msg) || !('retryAfterSec' in msg)) return;
    const resolves = waiting.get(msg.id);
    waiting.delete(msg.id);
    resolves?.forEach((resolve, i) => resolve(msg.retryAfterSec[i] === 0 ? { ok: true } : { ok: false, retryAfterSec: msg.retryAfterSec[i] }));
  });
  const flush = () => {
    flushing = false;
    if (!limit || (takes.length === 0 && refunds.size === 0)) return;
    const id = ++last;
    if (takes.length > 0) waiting.set(id, takes.map((t) => t.resolve));
    send({ berth: 'enroll-budget', id, limit, takes: takes.map((t) => t.key), refunds: [...refunds] });
    takes = [];
    refunds = new Map();
  };
  const later = (l: Limit) => {
    limit = { burst: l.burst, perSecond: l.perSecond };
    if (!flushing) {
      flushing = true;
      setImmediate(flush);
    }
  };
  return {
    take(key, l) {
      later(l);
      return new Promise<Taken>((resolve) => takes.push({ key, resolve }));
    },
    refund(key, n, l) {
      later(l);
      refunds.set(key, (refunds.get(key) ?? 0) + n);
    },
  };
}

/** The primary's side, pure: one bucket per address for every worker; the answer to send back, if any. */
export class EnrollBudgets {
  private readonly buckets: AddressBuckets;

  constructor(now: () => number = Date.now) {
    this.buckets = new AddressBuckets(now);
  }

  answer(msg: BudgetMessage): BudgetMessage | null {
    if (!('takes' in msg)) return null;
    // Refunds first: they are for requests that already ended, before these takes were asked.
    for (const [key, n] of msg.refunds) this.buckets.refund(key, n, msg.limit);
    if (msg.takes.length === 0) return null;
    const retryAfterSec = msg.takes.map((key) => {
      const t = this.buckets.take(key, msg.limit);
      return t.ok ? 0 : t.retryAfterSec;
    });
    return { berth: 'enroll-budget', id: msg.id, retryAfterSec };
  }
}
