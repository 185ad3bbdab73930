import { describe, expect, it } from 'vitest';
import { SerialQueue } from '../../common/serial-queue.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('SerialQueue', () => {
  it('runs jobs one at a time in push order, never overlapping', async () => {
    const errors: unknown[] = [];
    const q = new SerialQueue({ onError: (err) => errors.push(err) });
    const log: string[] = [];
    let running = 0;
    let maxRunning = 0;
    for (const [name, ms] of [['a', 30], ['b', 0], ['c', 10]] as const) {
      q.push(name, async () => {
        running += 1;
        maxRunning = Math.max(maxRunning, running);
        log.push(`${name} start`);
        await tick(ms);
        log.push(`${name} end`);
        running -= 1;
      });
    }
    expect(q.size).toBe(3);
    await q.idle();
    expect(log).toEqual(['a start', 'a end', 'b start', 'b end', 'c start', 'c end']);
    expect(maxRunning).toBe(1);
    expect(q.size).toBe(0);
    expect(errors).toEqual([]);
  });

  it('a failing job is reported with its label and does not stop the ones behind it', async () => {
    const errors: Array<[string, string, boolean]> = [];
    const q = new SerialQueue({ onError: (err, label, stopped) => errors.push([(err as Error).message, label, stopped]) });
    const ran: string[] = [];
    q.push('first', async () => { throw new Error('boom'); });
    q.push('second', async () => { ran.push('second'); });
    await q.idle();
    expect(errors).toEqual([['boom', 'first', false]]);
    expect(ran).toEqual(['second']);
  });

  it('stop() lets the running job finish, skips the queued ones and refuses new ones', async () => {
    const errors: Array<[string, boolean]> = [];
    const q = new SerialQueue({ onError: (err, _label, stopped) => errors.push([(err as Error).message, stopped]) });
    const ran: string[] = [];
    q.push('running', async () => {
      await tick(20);
      ran.push('running');
      throw new Error('cut short');
    });
    q.push('queued', async () => { ran.push('queued'); });
    await tick(5);
    q.stop();
    q.push('late', async () => { ran.push('late'); });
    await q.idle();
    expect(ran).toEqual(['running']);
    expect(errors).toEqual([['cut short', true]]);
    expect(q.size).toBe(0);
    expect(q.stopped).toBe(true);
  });

  it('an aborted signal stops it like stop()', async () => {
    const ac = new AbortController();
    const q = new SerialQueue({ onError: () => undefined, signal: ac.signal });
    const ran: string[] = [];
    q.push('a', async () => { ran.push('a'); ac.abort(); });
    q.push('b', async () => { ran.push('b'); });
    await q.idle();
    expect(ran).toEqual(['a']);
    expect(q.stopped).toBe(true);
  });
});
