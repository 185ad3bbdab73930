import { describe, expect, it } from 'vitest';
import { DesiredWaiters } from '../../control-plane/devices/desired-waiters.js';

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
});
