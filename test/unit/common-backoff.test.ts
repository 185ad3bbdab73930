import { describe, expect, it } from 'vitest';
import { abortableSleep, backoffDelay, retry, type BackoffPolicy, type RetryInfo } from '../../common/backoff.js';

const policy: BackoffPolicy = { baseMs: 100, capMs: 1000 };

describe('backoffDelay', () => {
  it('doubles from the base per failure and stops at the cap', () => {
    expect([0, 1, 2, 3, 4, 5, 60].map((a) => backoffDelay(policy, a))).toEqual([100, 200, 400, 800, 1000, 1000, 1000]);
  });

  it('takes another growth factor', () => {
    expect([0, 1, 2].map((a) => backoffDelay({ ...policy, factor: 3 }, a))).toEqual([100, 300, 900]);
  });

  it('jitter 0.5 waits between half and all of the delay', () => {
    const p = { ...policy, jitter: 0.5 };
    expect(backoffDelay(p, 2, () => 0)).toBe(200);
    expect(backoffDelay(p, 2, () => 0.5)).toBe(300);
    expect(backoffDelay(p, 2, () => 0.999999)).toBe(400);
    expect(backoffDelay(p, 9, () => 0)).toBe(500);
  });

  it('full jitter spans zero to the delay; no jitter ignores the random source', () => {
    expect(backoffDelay({ ...policy, jitter: 1 }, 1, () => 0)).toBe(0);
    expect(backoffDelay({ ...policy, jitter: 1 }, 1, () => 0.25)).toBe(50);
    expect(backoffDelay(policy, 1, () => 0)).toBe(200);
  });

  it('a negative attempt counts as the first', () => {
    expect(backoffDelay(policy, -3)).toBe(100);
  });

  it('refuses a policy that cannot mean anything, naming the field', () => {
    expect(() => backoffDelay({ baseMs: -1, capMs: 10 }, 0)).toThrow(/baseMs/);
    expect(() => backoffDelay({ baseMs: 100, capMs: 10 }, 0)).toThrow(/capMs/);
    expect(() => backoffDelay({ ...policy, factor: 0.5 }, 0)).toThrow(/factor/);
    expect(() => backoffDelay({ ...policy, jitter: 2 }, 0)).toThrow(/jitter/);
    expect(() => backoffDelay({ baseMs: Number.NaN, capMs: 10 }, 0)).toThrow(/baseMs/);
  });
});

/** A sleep that records what it was asked and returns at once. */
function recorder() {
  const waits: number[] = [];
  return { waits, sleep: async (ms: number) => void waits.push(ms) };
}

describe('retry', () => {
  it('returns the first success, waiting the policy between failures', async () => {
    const { waits, sleep } = recorder();
    const seen: number[] = [];
    const result = await retry(async (attempt) => {
      seen.push(attempt);
      if (attempt < 3) throw new Error(`fail ${attempt}`);
      return 'done';
    }, { policy, sleep });
    expect(result).toBe('done');
    expect(seen).toEqual([0, 1, 2, 3]);
    expect(waits).toEqual([100, 200, 400]);
  });

  it('gives up with the last error after `attempts` failures', async () => {
    const { waits, sleep } = recorder();
    let calls = 0;
    await expect(retry(async () => {
      calls += 1;
      throw new Error(`fail ${calls}`);
    }, { policy, attempts: 3, sleep })).rejects.toThrow('fail 3');
    expect(calls).toBe(3);
    expect(waits).toEqual([100, 200]);
  });

  it('does not retry what is not retryable', async () => {
    const { waits, sleep } = recorder();
    let calls = 0;
    const fatal = new Error('fatal');
    await expect(retry(async () => {
      calls += 1;
      throw calls === 1 ? new Error('transient') : fatal;
    }, { policy, sleep, retryable: (err) => (err as Error).message === 'transient' })).rejects.toBe(fatal);
    expect(calls).toBe(2);
    expect(waits).toEqual([100]);
  });

  it('a failure after progress does not use up an attempt and restarts the delay', async () => {
    const { waits, sleep } = recorder();
    const outcomes = ['none', 'none', 'progress', 'none', 'none', 'none'];
    let i = 0;
    await expect(retry(async () => {
      throw new Error(outcomes[i++]);
    }, { policy, attempts: 3, sleep, progressed: (err) => (err as Error).message === 'progress' })).rejects.toThrow('none');
    // two counted failures, then progress (count back to 0), then three more: the third gives up
    expect(i).toBe(6);
    expect(waits).toEqual([100, 200, 100, 100, 200]);
  });

  it('tells onRetry each wait, with the jittered delay from the given random source', async () => {
    const infos: RetryInfo[] = [];
    const { sleep } = recorder();
    const err = new Error('x');
    await expect(retry(async () => { throw err; }, { policy: { ...policy, jitter: 0.5 }, attempts: 3, sleep, random: () => 0, onRetry: (info) => infos.push(info) })).rejects.toBe(err);
    expect(infos).toEqual([
      { attempt: 0, failures: 1, delayMs: 50, error: err },
      { attempt: 1, failures: 2, delayMs: 100, error: err },
    ]);
  });

  it("waits at least what a failure asks for (Retry-After), plus the policy's jitter share of it, else the policy's delay", async () => {
    const { waits, sleep } = recorder();
    const asked = [3000, undefined, 50, 3000];
    let i = 0;
    await expect(retry(async () => {
      throw Object.assign(new Error('busy'), { retryAfterMs: asked[i++] });
    }, { policy: { ...policy, jitter: 0.5 }, attempts: 5, sleep, random: () => 0.5, notBefore: (err) => (err as { retryAfterMs?: number }).retryAfterMs })).rejects.toThrow('busy');
    // 3000 + a quarter (jitter 0.5 × random 0.5); then the policy's own (jittered 75 %): 150, 300 (above 50 × 1.25), 600 below 3,750.
    expect(waits).toEqual([3750, 150, 300, 3750]);
  });

  it('an abort during a wait ends the loop with the signal reason (real timers)', async () => {
    const ac = new AbortController();
    const reason = new Error('shutting down');
    let calls = 0;
    const started = Date.now();
    const run = retry(async () => {
      calls += 1;
      throw new Error('down');
    }, { policy: { baseMs: 10_000, capMs: 10_000 }, signal: ac.signal });
    setTimeout(() => ac.abort(reason), 30);
    await expect(run).rejects.toBe(reason);
    expect(calls).toBe(1);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('an abort while an attempt runs passes that attempt\'s error on, without another try', async () => {
    const ac = new AbortController();
    let calls = 0;
    const { sleep, waits } = recorder();
    await expect(retry(async () => {
      calls += 1;
      ac.abort();
      throw new Error('cut by abort');
    }, { policy, signal: ac.signal, sleep })).rejects.toThrow('cut by abort');
    expect([calls, waits.length]).toEqual([1, 0]);
  });

  it('an already aborted signal runs nothing', async () => {
    let calls = 0;
    await expect(retry(async () => { calls += 1; }, { policy, signal: AbortSignal.abort(new Error('gone')) })).rejects.toThrow('gone');
    expect(calls).toBe(0);
  });

  it('refuses a bad policy before the first attempt', async () => {
    let calls = 0;
    await expect(retry(async () => { calls += 1; }, { policy: { baseMs: 5, capMs: 1 } })).rejects.toThrow(/capMs/);
    expect(calls).toBe(0);
  });
});

describe('abortableSleep', () => {
  it('waits about the time asked', async () => {
    const t = Date.now();
    await abortableSleep(30);
    expect(Date.now() - t).toBeGreaterThanOrEqual(25);
  });

  it('rejects at once with the reason of a fired or firing signal', async () => {
    await expect(abortableSleep(10_000, AbortSignal.abort('early'))).rejects.toBe('early');
    const ac = new AbortController();
    const t = Date.now();
    const p = abortableSleep(10_000, ac.signal);
    ac.abort('late');
    await expect(p).rejects.toBe('late');
    expect(Date.now() - t).toBeLessThan(1000);
  });
});
