import { describe, expect, it } from 'vitest';
import { workerWriteTurn, WriteTurns, type TurnMessage } from '../../control-plane/write-turns.js';

describe('write turns among workers (the primary)', () => {
  it('gives the turn to one worker at a time, first come first served', () => {
    const turns = new WriteTurns();
    expect(turns.ask(1, 1, 0)).toEqual({ slot: 1, id: 1 });
    expect(turns.ask(2, 1, 0)).toBeNull();
    expect(turns.ask(3, 1, 0)).toBeNull();
    expect(turns.ask(1, 2, 0)).toBeNull();
    // Only the holder's done passes it on; a stale or foreign done changes nothing.
    expect(turns.done(2, 1, 1)).toBeNull();
    expect(turns.done(1, 1, 1)).toEqual({ slot: 2, id: 1 });
    expect(turns.done(2, 1, 2)).toEqual({ slot: 3, id: 1 });
    expect(turns.done(3, 1, 3)).toEqual({ slot: 1, id: 2 });
    expect(turns.done(1, 2, 4)).toBeNull();
    expect(turns.waiting).toBe(0);
  });

  it("puts the writer process's ask ahead of the queue, and the workers still get every other turn", () => {
    const turns = new WriteTurns(undefined, undefined, undefined, 9);
    expect(turns.ask(1, 1, 0)).toEqual({ slot: 1, id: 1 });
    turns.ask(2, 1, 0);
    turns.ask(3, 1, 0);
    turns.ask(9, 1, 0);
    expect(turns.done(1, 1, 1)).toEqual({ slot: 9, id: 1 });
    // The writer asks again only after its turn: the worker first in line goes before it.
    expect(turns.done(9, 1, 2)).toEqual({ slot: 2, id: 1 });
    turns.ask(9, 2, 2);
    expect(turns.done(2, 1, 3)).toEqual({ slot: 9, id: 2 });
    expect(turns.done(9, 2, 4)).toEqual({ slot: 3, id: 1 });
  });

  it('takes the turn and the place in line from a worker that died, and from one that held it too long', () => {
    const turns = new WriteTurns(1000);
    turns.ask(1, 1, 0);
    turns.ask(2, 1, 0);
    turns.ask(3, 1, 0);
    expect(turns.gone(2, 10)).toBeNull();
    expect(turns.gone(1, 20)).toEqual({ slot: 3, id: 1 });
    turns.started(3, 1, 20);
    turns.ask(1, 2, 30);
    expect(turns.expire(500)).toBeNull();
    expect(turns.expire(1020)).toEqual({ stuck: { slot: 3, id: 1 }, grant: { slot: 1, id: 2 } });
    // The stuck one's late done changes nothing.
    expect(turns.done(3, 1, 1100)).toBeNull();
  });

  it('passes on a grant the worker has not started within startMs; one that starts it late after all holds up the next grant until done', () => {
    const turns = new WriteTurns(30_000, 200);
    turns.ask(1, 1, 0);
    turns.ask(2, 1, 0);
    turns.ask(3, 1, 0);
    expect(turns.expire(199)).toBeNull();
    expect(turns.expire(200)).toEqual({ stuck: { slot: 1, id: 1 }, grant: { slot: 2, id: 1 } });
    // Worker 2 begins; worker 1 reads its grant late and writes too (SQLite's lock orders the two).
    turns.started(2, 1, 210);
    turns.started(1, 1, 250);
    // Worker 3 waits for the late writer as well, so the late one meets one holder, not a chain of them.
    expect(turns.done(2, 1, 300)).toBeNull();
    expect(turns.done(1, 1, 320)).toEqual({ slot: 3, id: 1 });
    turns.started(3, 1, 321);
    expect(turns.expire(10_000)).toBeNull();
    expect(turns.done(3, 1, 10_001)).toBeNull();
    expect(turns.waiting).toBe(0);
  });

  it('lets a late writer that never says done hold up the grants only lateMs, and forgets the passed-over grants of a worker that died', () => {
    const turns = new WriteTurns(30_000, 200, 1000);
    turns.ask(1, 1, 0);
    turns.ask(2, 1, 0);
    expect(turns.expire(200)).toEqual({ stuck: { slot: 1, id: 1 }, grant: { slot: 2, id: 1 } });
    turns.started(2, 1, 250);
    turns.started(1, 1, 300);
    expect(turns.done(2, 1, 400)).toBeNull();
    expect(turns.ask(3, 1, 400)).toBeNull();
    expect(turns.expire(1299)).toBeNull();
    expect(turns.expire(1300)).toEqual({ stuck: { slot: 1, id: 1 }, grant: { slot: 3, id: 1 } });
    turns.ask(4, 1, 1300);
    expect(turns.expire(1500)).toEqual({ stuck: { slot: 3, id: 1 }, grant: { slot: 4, id: 1 } });
    expect(turns.gone(3, 1600)).toBeNull();
    // A started from the dead worker's passed grant (already on its way) holds nothing up.
    turns.started(3, 1, 1700);
    expect(turns.done(4, 1, 1800)).toBeNull();
    expect(turns.ask(5, 1, 1900)).toEqual({ slot: 5, id: 1 });
  });
});

describe('write turns (a worker)', () => {
  it('waits for its turn, then says done once', async () => {
    const sent: TurnMessage[] = [];
    let deliver: (msg: unknown) => void = () => undefined;
    const turn = workerWriteTurn((m) => sent.push(m), (fn) => (deliver = fn));
    let got = false;
    const waiting = turn().then((release) => {
      got = true;
      return release;
    });
    expect(sent).toEqual([{ berth: 'write-turn', kind: 'ask', id: 1 }]);
    deliver({ berth: 'write-turn', kind: 'yours', id: 7 });
    deliver({ berth: 'notice', kind: 'yours', id: 1 });
    await new Promise((r) => setImmediate(r));
    expect(got).toBe(false);
    deliver({ berth: 'write-turn', kind: 'yours', id: 1 });
    const release = await waiting;
    release();
    release();
    expect(sent).toEqual([
      { berth: 'write-turn', kind: 'ask', id: 1 },
      { berth: 'write-turn', kind: 'started', id: 1 },
      { berth: 'write-turn', kind: 'done', id: 1 },
    ]);
  });
});
