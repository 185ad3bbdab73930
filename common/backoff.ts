/**
 * The one backoff policy of every retry loop in Berth (control channel, reports, enrollment,
 * download channel, the proxy's upstream client): exponential growth from `baseMs`, capped, with
 * a share of jitter so that many gateways retrying after the same outage do not arrive together.
 */

export interface BackoffPolicy {
  /** Delay after the first failure. */
  baseMs: number;
  /** No delay exceeds this. */
  capMs: number;
  /** Growth per failure (default 2). */
  factor?: number;
  /**
   * Share of each delay that is random, 0..1 (default 0): 0 waits exactly, 0.5 waits between half
   * and all of the delay, 1 anywhere between zero and all of it ("full jitter").
   */
  jitter?: number;
}

function checkPolicy(p: BackoffPolicy): void {
  const bad = (what: string) => new RangeError(`backoff policy: ${what} (got ${JSON.stringify(p)})`);
  if (!(p.baseMs >= 0) || !Number.isFinite(p.baseMs)) throw bad('baseMs must be a finite number >= 0');
  if (!(p.capMs >= p.baseMs)) throw bad('capMs must be >= baseMs');
  if (p.factor !== undefined && !(p.factor >= 1)) throw bad('factor must be >= 1');
  if (p.jitter !== undefined && !(p.jitter >= 0 && p.jitter <= 1)) throw bad('jitter must be within 0..1');
}

/**
 * The delay before retrying after failure number `attempt` (0 = the first failure). Pure:
 * `random` is a source in [0, 1) (Math.random by default; tests pass a fixed one).
 */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  checkPolicy(policy);
  const ceiling = Math.min(policy.capMs, policy.baseMs * (policy.factor ?? 2) ** Math.max(0, attempt));
  const jitter = policy.jitter ?? 0;
  return Math.round(ceiling * (1 - jitter + jitter * random()));
}

export interface RetryInfo {
  /** The attempt that failed (0 = the first). */
  attempt: number;
  /** Failures counted against `attempts` so far (progress resets it). */
  failures: number;
  delayMs: number;
  error: unknown;
}

export interface RetryOptions {
  policy: BackoffPolicy;
  /** Failed attempts allowed before giving up, the first included (default: no limit). */
  attempts?: number;
  /** Whether a failure is worth another attempt (default: every one is). */
  retryable?: (err: unknown) => boolean;
  /**
   * Whether the failed attempt made progress (e.g. bytes arrived before the cut): it then does not
   * use up an attempt, and the count and the delay start over. Slow links cut often.
   */
  progressed?: (err: unknown) => boolean;
  /** Ends the loop: during a wait it rejects with `signal.reason`; a running attempt's error is passed on. */
  signal?: AbortSignal;
  /**
   * The least wait a failure asks for, ms (an answer's Retry-After: a control plane whose database
   * was busy, a rate limit); the wait is then that plus the policy's jitter share of it again, so
   * clients refused together do not return together. The policy's delay when it is longer.
   */
  notBefore?: (err: unknown) => number | undefined;
  /** Called before each wait (log here). */
  onRetry?: (info: RetryInfo) => void;
  /** Injectable for tests; must reject when `signal` fires. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
}

/** Waits `ms`; rejects with the signal's reason when it fires first. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs `fn` until it resolves, waiting `backoffDelay(policy, failures - 1)` between attempts.
 * Gives up with the last error when it is not retryable or `attempts` failures were counted.
 * `fn` gets the attempt number (0 = the first) so it can treat its last try differently.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  checkPolicy(opts.policy);
  const attempts = opts.attempts ?? Infinity;
  const sleep = opts.sleep ?? abortableSleep;
  let failures = 0;
  for (let attempt = 0; ; attempt++) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    try {
      return await fn(attempt);
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      if (opts.retryable && !opts.retryable(err)) throw err;
      failures = opts.progressed?.(err) ? 0 : failures + 1;
      if (failures >= attempts) throw err;
      const asked = opts.notBefore?.(err) ?? 0;
      const delayMs = Math.max(backoffDelay(opts.policy, failures - 1, opts.random), Math.round(asked * (1 + (opts.policy.jitter ?? 0) * (opts.random ?? Math.random)())));
      opts.onRetry?.({ attempt, failures, delayMs, error: err });
      await sleep(delayMs, opts.signal);
    }
  }
}
