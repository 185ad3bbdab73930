import { AddressBuckets, type AddressBudget, type Limit, type Taken } from './device-api/enroll-guard.js';

/**
 * The per-address enrollment budgets of `--workers N`, kept by the primary for all workers
 * (cluster.ts). Each worker accepts its own connections (SCHED_NONE), so how an address's requests
 * fall between workers is the kernel's choice: a budget divided between them ran dry on the
 * busiest worker (HTTP 429 at 100,000 devices from two loopback addresses) while the others
 * idled, and a whole budget in each would multiply what an address may send by N.
 *
 * A round trip to the primary for every request cost more than the rest of the check: with
 * `--workers 2` each IPC message wakes the idle primary (and its answer the worker), and the
 * workers' sends alone took ~0.18 ms of CPU per enrollment (control-plane/SCALING.md, enrollment).
 * So the primary lends a worker tokens of an address ahead (credit): the worker spends them
 * without asking, asks for more before they run out, and tells the primary what it spent a few
 * times a second. The one bucket stays the bound, never exceeded:
 * - the primary's bucket refills only up to `burst` minus what it has lent and not been told
 *   spent (so the tokens of the bucket plus every worker's credit never pass `burst`, and no more
 *   come back a second than `perSecond`);
 * - a worker gives a refund back to its own credit only up to what it spent and has not reported;
 *   the rest goes to the primary, as refunds always did;
 * - credit an address stops using goes back to the bucket within two reports; and a take the
 *   bucket would refuse while another worker holds credit of the address waits for that credit to
 *   be recalled, so lending never refuses what one bucket would grant.
 */

/** Tokens a worker asks to hold per address, and below how many it asks for more (before it runs out). */
export const CREDIT = 64;
const REFILL_BELOW = 16;
/** How often a worker reports what it spent and gives back credit it stopped using. */
const REPORT_MS = 200;

/** A worker's account of an address: `used` tokens of its credit spent since its last report; `returned` unspent credit given back. */
export type Settle = [key: string, used: number, returned: number];

export type BudgetMessage =
  /** Worker to primary. `takes`: one token each, answered; `wants`: credit to hold; `settles`: its account, recalled or due. */
  | { berth: 'enroll-budget'; id: number; limit: Limit; takes: string[]; refunds: [string, number][]; wants?: [string, number][]; settles?: Settle[] }
  /** Primary to worker: per take 0 (granted) or the seconds to wait; and the credit lent by address. */
  | { berth: 'enroll-budget'; id: number; retryAfterSec: number[]; credit?: [string, number][] }
  /** Primary to worker: give back all credit of these addresses now (another worker's take waits for it). */
  | { berth: 'enroll-budget'; id: 0; recall: string[] };

type Ask = Extract<BudgetMessage, { takes: string[] }>;

export function isBudgetMessage(msg: unknown): msg is BudgetMessage {
  const m = msg as { berth?: unknown; id?: unknown } | null;
  return typeof m === 'object' && m !== null && m.berth === 'enroll-budget' && typeof m.id === 'number';
}

interface Held {
  credit: number;
  used: number;
  /** Taken from since the last report (credit not touched for a whole report goes back). */
  touched: boolean;
  /** A want of this address is on its way (its answer not yet in). */
  asking: boolean;
}

/** A worker's side: an AddressBudget spending the credit the primary lends, asking the primary when it has none. */
export function workerEnrollBudget(send: (msg: BudgetMessage) => void, onMessage: (fn: (msg: unknown) => void) => void, reportMs = REPORT_MS): AddressBudget & { stop(): void } {
  let last = 0;
  let takes: { key: string; resolve: (t: Taken) => void }[] = [];
  let refunds = new Map<string, number>();
  let wants = new Map<string, number>();
  let settles: Settle[] = [];
  let limit: Limit | null = null;
  let flushing = false;
  const held = new Map<string, Held>();
  const waiting = new Map<number, { resolves: ((t: Taken) => void)[]; asked: string[] }>();
  const heldOf = (key: string) => {
    let h = held.get(key);
    if (!h) held.set(key, (h = { credit: 0, used: 0, touched: false, asking: false }));
    return h;
  };
  /** Gives the address's account to the primary; with `all`, its credit too. */
  const settle = (key: string, all: boolean) => {
    const h = held.get(key);
    const returned = h && all ? h.credit : 0;
    if (!h) settles.push([key, 0, 0]);
    else if (h.used > 0 || returned > 0) settles.push([key, h.used, returned]);
    if (!h) return;
    h.used = 0;
    h.credit -= returned;
    if (h.credit === 0 && !h.asking) held.delete(key);
  };
  onMessage((msg) => {
    if (!isBudgetMessage(msg)) return;
    if ('recall' in msg) {
      for (const key of msg.recall) settle(key, true);
      flush();
      return;
    }
    if (!('retryAfterSec' in msg)) return;
    const w = waiting.get(msg.id);
    waiting.delete(msg.id);
    if (!w) return;
    for (const key of w.asked) {
      const h = held.get(key);
      if (h) h.asking = false;
    }
    for (const [key, n] of msg.credit ?? []) heldOf(key).credit += n;
    w.resolves.forEach((resolve, i) => resolve(msg.retryAfterSec[i] === 0 ? { ok: true } : { ok: false, retryAfterSec: msg.retryAfterSec[i] }));
    for (const key of w.asked) {
      const h = held.get(key);
      if (h && h.credit === 0 && h.used === 0) held.delete(key);
    }
  });
  const flush = () => {
    flushing = false;
    if (!limit || (takes.length === 0 && refunds.size === 0 && wants.size === 0 && settles.length === 0)) return;
    const id = ++last;
    const asked = [...wants.keys()];
    for (const key of asked) heldOf(key).asking = true;
    if (takes.length > 0 || asked.length > 0) waiting.set(id, { resolves: takes.map((t) => t.resolve), asked });
    send({ berth: 'enroll-budget', id, limit, takes: takes.map((t) => t.key), refunds: [...refunds], wants: [...wants], settles });
    takes = [];
    refunds = new Map();
    wants = new Map();
    settles = [];
  };
  const later = (l: Limit) => {
    limit = { burst: l.burst, perSecond: l.perSecond };
    if (!flushing) {
      flushing = true;
      setImmediate(flush);
    }
  };
  const want = (key: string, h: Held | undefined) => {
    if (h?.asking || wants.has(key)) return;
    wants.set(key, CREDIT - (h?.credit ?? 0));
  };
  // Spent tokens reported, and credit untouched for a whole period given back: the primary's bucket refills into both.
  const report = setInterval(() => {
    if (!limit) return;
    for (const [key, h] of held) {
      if (h.asking) continue;
      settle(key, !h.touched);
      h.touched = false;
    }
    if (settles.length > 0) later(limit);
  }, reportMs);
  report.unref();
  return {
    take(key, l) {
      const h = held.get(key);
      if (h && h.credit >= 1) {
        h.credit -= 1;
        h.used += 1;
        h.touched = true;
        if (h.credit < REFILL_BELOW && !h.asking) {
          want(key, h);
          later(l);
        }
        return { ok: true };
      }
      want(key, h);
      later(l);
      return new Promise<Taken>((resolve) => takes.push({ key, resolve }));
    },
    refund(key, n, l) {
      // Back into this worker's credit what it spent and has not reported; the primary's bucket takes the rest.
      const h = held.get(key);
      const own = h ? Math.min(n, h.used) : 0;
      if (h && own > 0) {
        h.used -= own;
        h.credit += own;
      }
      if (n - own > 0) {
        refunds.set(key, (refunds.get(key) ?? 0) + n - own);
        later(l);
      }
    },
    stop: () => clearInterval(report),
  };
}

/**
 * Credit lent at once: a quarter of what the bucket has above half its burst. With many workers
 * (fleet-sim runs 10) whole asks would leave the bucket empty for the workers that come later, and
 * each of their takes would wait for a recall from the others (a message to each holder); the half
 * kept back serves the takes of workers without credit at once, as one bucket would.
 */
export function lendableOf(tokens: number, wanted: number, burst: number): number {
  return Math.max(0, Math.min(wanted, Math.floor((tokens - burst / 2) / 4)));
}

/** A message for one worker. */
export interface Outgoing {
  slot: number;
  msg: BudgetMessage;
}

/** An ask whose takes wait for credit recalled from other workers, from take `next` on. */
interface Deferred {
  slot: number;
  msg: Ask;
  next: number;
  retryAfterSec: number[];
  /** The address it waits for, and the workers whose account of it is still to come. */
  key: string;
  from: Set<number>;
  /** Recalled once already: refused when the bucket is still empty after. */
  recalled: Set<string>;
}

/**
 * The primary's side, pure: one bucket per address for every worker, and what each worker holds of
 * it; answers each worker's message with the messages to send.
 */
export class EnrollBudgets {
  private readonly buckets: AddressBuckets;
  /** Tokens lent per address and worker, not yet reported spent or given back. */
  private readonly lent = new Map<string, Map<number, number>>();
  private readonly deferred: Deferred[] = [];

  constructor(now: () => number = Date.now) {
    this.buckets = new AddressBuckets(now);
  }

  answer(slot: number, msg: BudgetMessage): Outgoing[] {
    if (!('takes' in msg)) return [];
    const out: Outgoing[] = [];
    // Accounts and refunds first: they are for requests that already ended, before these takes were asked.
    for (const [key, used, returned] of msg.settles ?? []) {
      this.lend(key, slot, -(used + returned));
      if (returned > 0) this.buckets.refund(key, returned, this.limitOf(key, msg.limit));
      this.heard(slot, key);
    }
    for (const [key, n] of msg.refunds) this.buckets.refund(key, n, this.limitOf(key, msg.limit));
    this.resume(out);
    this.decide({ slot, msg, next: 0, retryAfterSec: [], key: '', from: new Set(), recalled: new Set() }, out);
    return out;
  }

  /** A worker died: what it held is spent, and nothing waits for its account any more. */
  gone(slot: number): Outgoing[] {
    for (const [key, by] of this.lent) {
      by.delete(slot);
      if (by.size === 0) this.lent.delete(key);
    }
    const out: Outgoing[] = [];
    for (let i = this.deferred.length - 1; i >= 0; i--) if (this.deferred[i].slot === slot) this.deferred.splice(i, 1);
    for (const d of this.deferred) d.from.delete(slot);
    this.resume(out);
    return out;
  }

  /** What `key` may hold: the bucket's burst less what workers hold of it. */
  private limitOf(key: string, limit: Limit): Limit {
    let held = 0;
    for (const n of this.lent.get(key)?.values() ?? []) held += n;
    return { burst: Math.max(0, limit.burst - held), perSecond: limit.perSecond };
  }

  private lend(key: string, slot: number, n: number): void {
    let by = this.lent.get(key);
    if (!by) this.lent.set(key, (by = new Map()));
    const left = Math.max(0, (by.get(slot) ?? 0) + n);
    if (left > 0) by.set(slot, left);
    else by.delete(slot);
    if (by.size === 0) this.lent.delete(key);
  }

  /** Takes in order; at one the bucket refuses while other workers hold credit of its address, recalls it and waits. */
  private decide(d: Deferred, out: Outgoing[]): void {
    const { msg, slot } = d;
    for (; d.next < msg.takes.length; d.next++) {
      const key = msg.takes[d.next];
      const t = this.buckets.take(key, this.limitOf(key, msg.limit));
      if (t.ok) {
        d.retryAfterSec.push(0);
        continue;
      }
      const holders = [...(this.lent.get(key)?.keys() ?? [])].filter((s) => s !== slot);
      if (holders.length > 0 && !d.recalled.has(key)) {
        d.recalled.add(key);
        d.key = key;
        d.from = new Set(holders);
        this.deferred.push(d);
        for (const s of holders) out.push({ slot: s, msg: { berth: 'enroll-budget', id: 0, recall: [key] } });
        return;
      }
      d.retryAfterSec.push(t.retryAfterSec);
    }
    const credit: [string, number][] = [];
    for (const [key, n] of msg.wants ?? []) {
      // Lent only from what the bucket has now, and not while another ask waits for this address.
      if (this.deferred.some((w) => w.key === key)) continue;
      const limit = this.limitOf(key, msg.limit);
      const lendable = lendableOf(this.buckets.available(key, limit), n, msg.limit.burst);
      let lent = 0;
      while (lent < lendable && this.buckets.take(key, limit).ok) lent++;
      if (lent === 0) continue;
      this.lend(key, slot, lent);
      credit.push([key, lent]);
    }
    if (msg.takes.length > 0 || msg.wants?.length) out.push({ slot, msg: { berth: 'enroll-budget', id: msg.id, retryAfterSec: d.retryAfterSec, ...(credit.length ? { credit } : {}) } });
  }

  /** A worker's account of `key` came: a deferred ask waiting for it may go on. */
  private heard(slot: number, key: string): void {
    for (const d of this.deferred) if (d.key === key) d.from.delete(slot);
  }

  private resume(out: Outgoing[]): void {
    for (let i = 0; i < this.deferred.length; ) {
      const d = this.deferred[i];
      if (d.from.size > 0) {
        i++;
        continue;
      }
      this.deferred.splice(i, 1);
      this.decide(d, out);
    }
  }
}
