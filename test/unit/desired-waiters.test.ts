import { afterEach, describe, expect, it, vi } from 'vitest';
import { DesiredWaiters, type Departure } from '../../control-plane/devices/desired-waiters.js';

/** A long poll's renewal reads nothing when its wait ran out unwoken (device-api/routes.ts): the reason must be right. */
describe('DesiredWaiters wake reasons', () => {
  it('tells a change from a wait run out and from a client gone', async () => {
    const w = new DesiredWaiters();
    const changed = w.enter('dev-1', 60_000);
    const expired = w.enter('dev-2', 5);
    const aborts = new AbortController();
    const left = w.enter('dev-3', 60_000, aborts.signal);
    const leftEarly = w.enter('dev-4', 60_000);
    w.wake('dev-1');
    aborts.abort();
    leftEarly.leave();
    expect(await Promise.all([changed.woken, expired.woken, left.woken, leftEarly.woken])).toEqual(['changed', 'expired', 'left', 'left']);
    // Each left the table: none is woken twice or kept.
    expect(w.size).toBe(0);
  });

  it('wakes every waiter as changed when the process stops, and after that waits not at all', async () => {
    const w = new DesiredWaiters();
    const waiting = w.enter('dev-1', 60_000);
    w.close();
    expect(await waiting.woken).toBe('changed');
    expect(await w.enter('dev-2', 60_000).woken).toBe('changed');
  });

  it('wakes a wave of devices a batch per turn of the event loop, so timers run between batches', async () => {
    const w = new DesiredWaiters();
    const polls = Array.from({ length: 1000 }, (_, i) => w.enter(`dev-${i}`, 60_000));
    let answered = 0;
    for (const p of polls) void p.woken.then(() => answered++);
    for (let i = 0; i < 1000; i++) w.wake(`dev-${i}`);
    // The next turn of the loop (where a timer or another request would run) comes before the last is woken.
    await new Promise((r) => setImmediate(r));
    expect(answered).toBeGreaterThan(0);
    expect(answered).toBeLessThan(1000);
    expect(await Promise.all(polls.map((p) => p.woken))).toEqual(Array(1000).fill('changed'));
    expect(w.size).toBe(0);
  });

  describe('expiry', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('runs long waits out on shared 100 ms slots, never after their time and at most 100 ms before', async () => {
      vi.useFakeTimers({ now: 1_000_037 });
      const w = new DesiredWaiters();
      const start = Date.now();
      const waits = Array.from({ length: 2000 }, (_, i) => 48_000 + ((i * 7919) % 12_000));
      const ended = new Array<number>(waits.length);
      waits.forEach((ms, i) => void w.enter(`dev-${i}`, ms).woken.then((r) => (ended[i] = r === 'expired' ? Date.now() - start : -1)));
      // 2,000 waits of 12,000 different lengths: one timer per slot of 100 ms, not one per wait.
      expect(vi.getTimerCount()).toBeLessThanOrEqual(121);
      await vi.advanceTimersByTimeAsync(60_000);
      waits.forEach((ms, i) => {
        expect(ended[i]).toBeLessThanOrEqual(ms);
        expect(ended[i]).toBeGreaterThan(ms - 100);
      });
      expect(w.size).toBe(0);
      expect(vi.getTimerCount()).toBe(0);
    });

    it('keeps a timer of its own for a short wait, and drops a slot whose waiters all left', async () => {
      vi.useFakeTimers({ now: 5_000_050 });
      const w = new DesiredWaiters();
      const short = w.enter('dev-short', 30);
      const long = w.enter('dev-long', 5_000);
      expect(vi.getTimerCount()).toBe(2);
      long.leave();
      expect(vi.getTimerCount()).toBe(1);
      await vi.advanceTimersByTimeAsync(30);
      expect(await short.woken).toBe('expired');
      expect(await long.woken).toBe('left');
    });
  });

  it('leaves on any departure with one listener, not only an AbortSignal', async () => {
    let listener: (() => void) | undefined;
    const departure: Departure = {
      aborted: false,
      addEventListener: (_t, l) => (listener = l),
      removeEventListener: (_t, l) => {
        if (listener === l) listener = undefined;
      },
    };
    const w = new DesiredWaiters();
    const first = w.enter('dev-1', 60_000, departure);
    w.wake('dev-1');
    expect(await first.woken).toBe('changed');
    // Its listener removed with it: the next wait of the same poll has its own.
    expect(listener).toBeUndefined();
    const second = w.enter('dev-1', 60_000, departure);
    listener?.();
    expect(await second.woken).toBe('left');
    expect(w.size).toBe(0);
  });
});
