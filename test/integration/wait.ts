/**
 * Polling for a state the system reaches on its own (a daemon committing, a campaign passing), for
 * the integration tests and the demo (imported from dist, so no vitest in here). The timeout is a
 * bound on a hang, not a timed assertion.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  /** How long before giving up (default 60 s). */
  timeoutMs?: number;
  /** How long between probes (default 200 ms). */
  intervalMs?: number;
  /** What to add to the timeout error: the last state seen. */
  describe?: () => Promise<string>;
}

/**
 * Probes until it returns a value other than undefined or false and returns that value; a probe
 * that throws is tried again. Times out naming what was awaited, the last error and the state
 * `describe` gives. A bare number is the timeout.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, options: number | WaitOptions = {}): Promise<T> {
  const opts = typeof options === 'number' ? { timeoutMs: options } : options;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const state = opts.describe ? await opts.describe().catch((e: unknown) => `(could not describe: ${String(e)})`) : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}${state ? `\n${state}` : ''}`);
    }
    await sleep(opts.intervalMs ?? 200);
  }
}
