import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TurnDesk } from '../../control-plane/cluster-turns.js';
import type { TurnMessage } from '../../control-plane/write-turns.js';

/** The primary's desk with its grants recorded: `yours` by slot, in order. */
function desk() {
  const grants: { slot: number; id: number }[] = [];
  const logged: string[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => void logged.push((JSON.parse(line) as { msg: string }).msg) });
  const d = new TurnDesk(9, (slot, msg) => msg.kind === 'yours' && grants.push({ slot, id: msg.id }), log);
  const say = (slot: number, kind: TurnMessage['kind'], id: number) => d.receive(slot, { berth: 'write-turn', kind, id } as TurnMessage);
  return { d, grants, logged, say };
}

describe("the primary's write-turn desk (cluster-turns.ts)", () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('grants one worker at a time, the next on done', () => {
    const { d, grants, say } = desk();
    say(1, 'ask', 1);
    say(2, 'ask', 1);
    expect(grants).toEqual([{ slot: 1, id: 1 }]);
    say(1, 'started', 1);
    say(1, 'done', 1);
    expect(grants).toEqual([
      { slot: 1, id: 1 },
      { slot: 2, id: 1 },
    ]);
    d.close();
  });

  it('passes on a grant not started within 200 ms, and keeps one that was started', () => {
    const { d, grants, say } = desk();
    say(1, 'ask', 1);
    say(2, 'ask', 1);
    say(3, 'ask', 1);
    vi.advanceTimersByTime(199);
    expect(grants.map((g) => g.slot)).toEqual([1]);
    vi.advanceTimersByTime(3);
    // Worker 1 never started: worker 2 gets it; worker 2 starts, and keeps it past 200 ms.
    expect(grants.map((g) => g.slot)).toEqual([1, 2]);
    say(2, 'started', 1);
    vi.advanceTimersByTime(900);
    expect(grants.map((g) => g.slot)).toEqual([1, 2]);
    say(2, 'done', 1);
    expect(grants.map((g) => g.slot)).toEqual([1, 2, 3]);
    d.close();
  });

  it('checks a grant made after the timer was armed at its own deadline, not the earlier one', () => {
    const { d, grants, say } = desk();
    say(1, 'ask', 1);
    say(1, 'started', 1);
    vi.advanceTimersByTime(150);
    say(2, 'ask', 1);
    say(3, 'ask', 1);
    say(1, 'done', 1);
    // Worker 2 granted at 150 ms and silent: not passed over at 201 (51 ms old), passed at 351.
    vi.advanceTimersByTime(60);
    expect(grants.map((g) => g.slot)).toEqual([1, 2]);
    vi.advanceTimersByTime(140);
    expect(grants.map((g) => g.slot)).toEqual([1, 2]);
    vi.advanceTimersByTime(3);
    expect(grants.map((g) => g.slot)).toEqual([1, 2, 3]);
    d.close();
  });

  it("gives a dead worker's turn to the next", () => {
    const { d, grants, say } = desk();
    say(1, 'ask', 1);
    say(1, 'started', 1);
    say(2, 'ask', 1);
    d.gone(1);
    expect(grants.map((g) => g.slot)).toEqual([1, 2]);
    d.close();
  });

  it('logs a turn held past a second', () => {
    const { d, logged, say } = desk();
    say(1, 'ask', 1);
    say(1, 'started', 1);
    vi.advanceTimersByTime(1500);
    say(1, 'done', 1);
    expect(logged).toEqual(['worker 1 held the write turn 1500 ms']);
    d.close();
  });
});
