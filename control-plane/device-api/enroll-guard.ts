import { isIPv6 } from 'node:net';

/**
 * What anyone can send to the enrollment routes costs them, not the control plane (issue 14,
 * finding 8): requests are rate-limited per client address, and refusals are audited as one row
 * per address and window with a count, not one row each.
 */

/** An address's budget: requests it may make at once, and how many it regains a second. */
export interface Limit {
  /** Requests an address may make at once (a fleet behind one NAT enrolling together). */
  burst: number;
  /** Requests per second an address regains. */
  perSecond: number;
}

export type Taken = { ok: true } | { ok: false; retryAfterSec: number };

/**
 * Where the budgets are kept: in this process (AddressBuckets), or for `--workers N` by the
 * primary for every worker (control-plane/enroll-budgets.ts): the kernel gives a worker whatever
 * share of an address's connections it accepts, so a budget split between workers ran dry on the
 * busiest while the others idled, and one kept by each would multiply it.
 */
export interface AddressBudget {
  take(key: string, limit: Limit): Taken | Promise<Taken>;
  refund(key: string, n: number, limit: Limit): void;
}

export interface EnrollGuardOptions extends Limit {
  /** Default: this process's own buckets. */
  budget?: AddressBudget;
  /** Refusals from one address after its first are counted for this long, then audited as one row. */
  windowMs: number;
  /** Writes one audit row (outside the guard: it owns no database). */
  audit(row: RefusalRow): Promise<void>;
  now?: () => number;
}

export interface RefusalRow {
  address: string;
  /** The serial of the first refusal, or of the window's refusals `{count, codes, serials}`. */
  serial: string;
  code: string;
  reason: string;
  window?: { count: number; codes: Record<string, number>; serials: string[]; from: string; to: string };
}

/** Addresses kept at most; a flood of distinct ones drops the oldest idle buckets first. */
const MAX_ADDRESSES = 100_000;
/** Serials named in one window's row; the count says how many refusals there were. */
const WINDOW_SERIALS = 10;

/** IPv6 by its /64 (one host owns a whole /64 and can pick any address in it); IPv4 as it is. */
export function clientKey(address: string | undefined): string {
  if (!address) return 'unknown';
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (!isIPv6(v4)) return v4;
  const groups = expandIPv6(v4);
  return `${groups.slice(0, 4).join(':')}::/64`;
}

function expandIPv6(a: string): string[] {
  const [head, tail = ''] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const zeros = a.includes('::') ? Array(8 - h.length - t.length).fill('0') : [];
  return [...h, ...zeros, ...t].map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''));
}

interface Window {
  count: number;
  codes: Record<string, number>;
  serials: Set<string>;
  from: number;
  timer: NodeJS.Timeout;
}

export class EnrollGuard {
  private readonly budget: AddressBudget;
  private readonly windows = new Map<string, Window>();
  private readonly pending = new Set<Promise<void>>();
  private readonly now: () => number;

  constructor(private readonly opts: EnrollGuardOptions) {
    this.now = opts.now ?? Date.now;
    this.budget = opts.budget ?? new AddressBuckets(this.now);
  }

  /** Takes one request from the address's budget; when there is none, how many seconds until there is. */
  take(key: string): Taken | Promise<Taken> {
    return this.budget.take(key, this.opts);
  }

  /** A device that enrolled gets back what its challenge and proof cost: real fleets never run dry. */
  refund(key: string, n: number): void {
    this.budget.refund(key, n, this.opts);
  }

  /** Audits a refusal: the first of an address at once, the rest of its window as one row when it ends. */
  refused(key: string, serial: string, code: string, reason: string): void {
    const w = this.windows.get(key);
    if (w) {
      w.count++;
      w.codes[code] = (w.codes[code] ?? 0) + 1;
      if (w.serials.size < WINDOW_SERIALS) w.serials.add(serial);
      return;
    }
    const timer = setTimeout(() => this.closeWindow(key), this.opts.windowMs);
    timer.unref();
    this.windows.set(key, { count: 0, codes: {}, serials: new Set(), from: this.now(), timer });
    this.track(this.opts.audit({ address: key, serial, code, reason }));
  }

  /** Writes every open window's row (shutdown). */
  async close(): Promise<void> {
    for (const key of [...this.windows.keys()]) this.closeWindow(key);
    await Promise.allSettled([...this.pending]);
  }

  private closeWindow(key: string): void {
    const w = this.windows.get(key);
    if (!w) return;
    clearTimeout(w.timer);
    this.windows.delete(key);
    if (w.count === 0) return;
    const serials = [...w.serials];
    const codes = Object.entries(w.codes).map(([c, n]) => `${n} ${c}`).join(', ');
    const window = { count: w.count, codes: w.codes, serials, from: new Date(w.from).toISOString(), to: new Date(this.now()).toISOString() };
    this.track(this.opts.audit({ address: key, serial: serials[0] ?? '', code: 'refused-repeatedly', reason: `${w.count} more refusals (${codes})`, window }));
  }

  /** `audit` logs its own failures; here only the promise is kept, so `close` can wait for it. */
  private track(p: Promise<void>): void {
    const t = p.catch(() => undefined).finally(() => this.pending.delete(t));
    this.pending.add(t);
  }
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Token buckets by address, in one process; LRU-bounded. */
export class AddressBuckets implements AddressBudget {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly now: () => number = Date.now) {}

  take(key: string, limit: Limit): Taken {
    const b = this.bucket(key, limit, this.now());
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterSec: Math.max(1, Math.ceil((1 - b.tokens) / limit.perSecond)) };
  }

  /** Whole tokens the address has now. */
  available(key: string, limit: Limit): number {
    return Math.floor(this.bucket(key, limit, this.now()).tokens);
  }

  refund(key: string, n: number, limit: Limit): void {
    const b = this.buckets.get(key);
    if (b) b.tokens = Math.min(limit.burst, b.tokens + n);
  }

  private bucket(key: string, limit: Limit, now: number): Bucket {
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(limit.burst, b.tokens + ((now - b.at) / 1000) * limit.perSecond);
      b.at = now;
      // Most recently used last: the first entries are the ones to drop.
      this.buckets.delete(key);
      this.buckets.set(key, b);
      return b;
    }
    // The least recently used goes: memory stays bounded however many addresses send.
    if (this.buckets.size >= MAX_ADDRESSES) this.buckets.delete(this.buckets.keys().next().value as string);
    b = { tokens: limit.burst, at: now };
    this.buckets.set(key, b);
    return b;
  }
}
