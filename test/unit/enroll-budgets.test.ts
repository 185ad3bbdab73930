import { setImmediate as turn } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { CREDIT, EnrollBudgets, lendableOf, workerEnrollBudget, type BudgetMessage } from '../../control-plane/enroll-budgets.js';
import type { Limit, Taken } from '../../control-plane/device-api/enroll-guard.js';

const LIMIT: Limit = { burst: 240, perSecond: 2 };

/** A primary and `n` workers joined as cluster.ts joins them, each message delivered a loop turn later (as IPC does). */
function cluster(n: number, reportMs = 60_000) {
  const clock = { now: 1_000_000 };
  const primary = new EnrollBudgets(() => clock.now);
  const handlers: ((msg: unknown) => void)[] = [];
  const sent = Array.from({ length: n + 1 }, () => 0);
  const toWorker = (slot: number, msg: BudgetMessage) => setImmediate(() => handlers[slot]?.(msg));
  const workers = Array.from({ length: n }, (_, i) => {
    const slot = i + 1;
    return workerEnrollBudget(
      (msg) => {
        sent[slot]++;
        setImmediate(() => primary.answer(slot, msg).forEach((o) => toWorker(o.slot, o.msg)));
      },
      (fn) => (handlers[slot] = fn),
      reportMs,
    );
  });
  const stops = workers.map((w) => w.stop);
  /** The worker's process ends: it answers nothing more, and the primary learns it is gone `later`. */
  const kill = (slot: number) => {
    delete handlers[slot];
    workers[slot - 1].stop();
    return { gone: () => primary.gone(slot).forEach((o) => toWorker(o.slot, o.msg)) };
  };
  return { primary, workers: [undefined, ...workers], sent, clock, stop: () => stops.forEach((s) => s()), kill };
}

let stop = () => undefined as void;
afterEach(() => stop());

const granted = (ts: Taken[]) => ts.filter((t) => t.ok).length;

describe('one enrollment budget per address for every worker (the primary lends credit)', () => {
  it('spends lent credit without a message per request, and an enrolled device gets its cost back', async () => {
    const c = cluster(1);
    stop = c.stop;
    const w = c.workers[1]!;
    const answers: Taken[] = [];
    // 1,000 enrollments one after another: a challenge and a proof each, both refunded once enrolled.
    for (let i = 0; i < 1000; i++) {
      answers.push(await w.take('10.0.0.1', LIMIT), await w.take('10.0.0.1', LIMIT));
      w.refund('10.0.0.1', 2, LIMIT);
    }
    expect(granted(answers)).toBe(2000);
    // The first take asked; the credit lent with its answer served the rest.
    expect(c.sent[1]).toBeLessThanOrEqual(2);
  });

  it('never grants more than the one bucket: two workers drawing on one address get the burst between them, no more and no less', async () => {
    const c = cluster(2);
    stop = c.stop;
    const [a, b] = [c.workers[1]!, c.workers[2]!];
    const answers: Taken[] = [];
    // Interleaved, many in flight on both: no time passes, so nothing refills.
    for (let i = 0; i < 300; i += 10) answers.push(...(await Promise.all(Array.from({ length: 10 }, (_, j) => ((i + j) % 2 ? a : b).take('10.0.0.2', LIMIT)))));
    expect(granted(answers)).toBe(LIMIT.burst);
    expect(answers.at(-1)).toEqual({ ok: false, retryAfterSec: 1 });
    // Another address has its own bucket.
    expect(await a.take('10.0.0.3', LIMIT)).toEqual({ ok: true });
  });

  it('lends a quarter of what the bucket has above half its burst, so lending alone never drains it', () => {
    expect([lendableOf(240, CREDIT, 240), lendableOf(200, CREDIT, 240), lendableOf(124, CREDIT, 240), lendableOf(40, CREDIT, 240), lendableOf(240, 5, 240)]).toEqual([30, 20, 1, 0, 5]);
  });

  it('serves ten workers of one address without a recall while the bucket lasts', async () => {
    const c = cluster(10);
    stop = c.stop;
    const recalls: unknown[] = [];
    const answer = c.primary.answer.bind(c.primary);
    c.primary.answer = (slot, msg) => {
      const out = answer(slot, msg);
      recalls.push(...out.filter((o) => 'recall' in o.msg));
      return out;
    };
    // Every worker in turn enrolls devices (a take for the challenge, one for the proof, both refunded).
    for (let round = 0; round < 20; round++) {
      const takes = await Promise.all(c.workers.slice(1).map(async (w) => [await w!.take('10.0.0.7', LIMIT), await w!.take('10.0.0.7', LIMIT)]));
      expect(granted(takes.flat())).toBe(20);
      for (const w of c.workers.slice(1)) w!.refund('10.0.0.7', 2, LIMIT);
    }
    expect(recalls).toEqual([]);
  });

  it('recalls credit another worker holds rather than refuse what the bucket would grant', async () => {
    const c = cluster(2);
    stop = c.stop;
    const [a, b] = [c.workers[1]!, c.workers[2]!];
    // a holds credit; b drains the rest of the bucket, then needs a's unspent credit.
    expect(await a.take('10.0.0.4', LIMIT)).toEqual({ ok: true });
    const fromB: Taken[] = [];
    for (let i = 0; i < LIMIT.burst; i++) fromB.push(await b.take('10.0.0.4', LIMIT));
    expect(granted(fromB)).toBe(LIMIT.burst - 1);
    expect(fromB.at(-1)?.ok).toBe(false);
    // a's credit went back: it asks the primary now, and the empty bucket refuses it.
    expect((await a.take('10.0.0.4', LIMIT)).ok).toBe(false);
  });

  it('reports spent tokens and gives back credit left unused, so the bucket refills into them', async () => {
    const c = cluster(2, 20);
    stop = c.stop;
    const [a, b] = [c.workers[1]!, c.workers[2]!];
    for (let i = 0; i < 10; i++) expect(await a.take('10.0.0.5', LIMIT)).toEqual({ ok: true });
    // Two reports later a holds nothing; a second of refill later the bucket has back what a spent (2 a second).
    await new Promise((r) => setTimeout(r, 100));
    c.clock.now += 5_000;
    const fromB: Taken[] = [];
    for (let i = 0; i < LIMIT.burst + 1; i++) fromB.push(await b.take('10.0.0.5', LIMIT));
    expect(granted(fromB)).toBe(LIMIT.burst);
  });

  it('counts what a dead worker held as spent, and answers the takes that waited for its account', async () => {
    const c = cluster(2);
    stop = c.stop;
    const [a, b] = [c.workers[1]!, c.workers[2]!];
    expect(await a.take('10.0.0.6', LIMIT)).toEqual({ ok: true });
    // a dies holding the credit lent with that answer (the primary does not know yet): b gets what is left in the bucket...
    const dead = c.kill(1);
    const drained: Taken[] = [];
    const left = LIMIT.burst - 1 - lendableOf(LIMIT.burst - 1, CREDIT, LIMIT.burst);
    for (let i = 0; i < left; i++) drained.push(await b.take('10.0.0.6', LIMIT));
    expect(granted(drained)).toBe(left);
    // ...then its next take waits for a's account, which never comes, until the primary learns a is gone.
    let answered: Taken | undefined;
    const next = Promise.resolve(b.take('10.0.0.6', LIMIT)).then((t) => (answered = t));
    for (let i = 0; i < 10; i++) await turn();
    expect(answered).toBeUndefined();
    dead.gone();
    expect(await next).toEqual({ ok: false, retryAfterSec: 1 });
  });
});
