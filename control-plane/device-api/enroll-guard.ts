import { isIPv6 } from 'node:net';

/**
 * What anyone can send to the enrollment routes costs them, not the control plane (issue 14,
 * finding 8): requests are rate-limited per client address, and refusals are audited as one row
 * per address and window with a count, not one row each.
 */

export interface EnrollGuardOptions {
  /** Requests an address may make at once (a fleet behind one NAT enrolling together). */
  burst: number;
  /** Requests per second an address regains. */
  perSecond: number;
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

interface Bucket {
  tokens: number;
  at: number;
}

interface Window {
  count: number;
  codes: Record<string, number>;
  serials: Set<string>;
  from: number;
  timer: NodeJS.Timeout;
}

export class EnrollGuard {
  private readonly buckets = new Map<string, Bucket>();
  private readonly windows = new Map<string, Window>();
  private readonly pending = new Set<Promise<void>>();
  private readonly now: () => number;

  constructor(private readonly opts: EnrollGuardOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Takes one request from the address's budget; when there is none, how many seconds until there is. */
  take(key: string): { ok: true } | { ok: false; retryAfterSec: number } {
    const now = this.now();
    const b = this.bucket(key, now);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterSec: Math.max(1, Math.ceil((1 - b.tokens) / this.opts.perSecond)) };
  }

  /** A device that enrolled gets back what its challenge and proof cost: real fleets never run dry. */
  refund(key: string, n: number): void {
    const b = this.buckets.get(key);
    if (b) b.tokens = Math.min(this.opts.burst, b.tokens + n);
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

  private bucket(key: string, now: number): Bucket {
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(this.opts.burst, b.tokens + ((now - b.at) / 1000) * this.opts.perSecond);
      b.at = now;
      // Most recently used last: the first entries are the ones to drop.
      this.buckets.delete(key);
      this.buckets.set(key, b);
      return b;
    }
    // The least recently used goes: memory stays bounded however many addresses send.
    if (this.buckets.size >= MAX_ADDRESSES) this.buckets.delete(this.buckets.keys().next().value as string);
    b = { tokens: this.opts.burst, at: now };
    this.buckets.set(key, b);
    return b;
  }
}
