import type { WriteTurn } from './db/write-queue.js';

/**
 * Turns to write among the workers of `--workers N`, handed out by the primary over cluster IPC.
 * SQLite lets one process write at a time; a worker that meets the lock retries on timers
 * (db/writer.ts), 1 ms doubling to 20 ms, so it may begin up to 20 ms after the other committed, and
 * several workers polling the lock are served in no order. Asking the primary first, each worker
 * waits for its turn (its event loop keeps serving), in arrival order, and begins its transaction
 * as soon as the other has committed. Each worker's write queue asks once per group commit.
 * SQLite's lock and busy timeout still guard every write (other processes on the same file, a turn
 * held too long).
 */

export type TurnMessage = { berth: 'write-turn'; kind: 'ask' | 'started' | 'done'; id: number } | { berth: 'write-turn'; kind: 'yours'; id: number };

export function isTurnMessage(msg: unknown): msg is TurnMessage {
  const m = msg as Partial<TurnMessage> | null;
  return typeof m === 'object' && m !== null && m.berth === 'write-turn' && typeof m.id === 'number';
}

/** A worker's side: ask, wait for `yours`, write, say `done`. */
export function workerWriteTurn(send: (msg: TurnMessage) => void, onMessage: (fn: (msg: unknown) => void) => void): WriteTurn {
  let last = 0;
  const waiting = new Map<number, () => void>();
  onMessage((msg) => {
    if (!isTurnMessage(msg) || msg.kind !== 'yours') return;
    const go = waiting.get(msg.id);
    if (!go) return;
    waiting.delete(msg.id);
    // At once, before the transaction: the primary passes on a grant not started within its startMs.
    send({ berth: 'write-turn', kind: 'started', id: msg.id });
    go();
  });
  return () =>
    new Promise((resolve) => {
      const id = ++last;
      let released = false;
      waiting.set(id, () =>
        resolve(() => {
          if (released) return;
          released = true;
          send({ berth: 'write-turn', kind: 'done', id });
        }),
      );
      send({ berth: 'write-turn', kind: 'ask', id });
    });
}

interface Ask {
  slot: number;
  id: number;
}

/**
 * The primary's side, pure: who holds the turn and who waits, first come first served. Each call
 * returns the grant to send, if the turn moved. A holder that dies, or keeps the turn longer than
 * `maxHoldMs` (a stuck transaction), loses it; SQLite's own lock still orders what follows.
 *
 * A grant the worker has not said `started` to within `startMs` passes on too: the grant waits in
 * the worker's IPC channel until its event loop is free, and under load that was seconds with every
 * other worker's writes queued behind it (turns held 1-13 s around transactions under 1.2 s at
 * 20,000 devices, SCALING.md). The late worker still writes when it reads the grant; SQLite's lock
 * (taken on timers, db/writer.ts) orders it against the holder of the moment. Once it says `started`,
 * no further turn is granted until it is done: otherwise it met a chain of holders, each granted the
 * moment the last committed, and at 100,000 devices such late writes waited out the 5 s busy
 * timeout and failed (SQLITE_BUSY). So a late writer waits for one holder, not for all of them.
 * A late writer holds the grants up at most `lateMs`: its loop may stall again (for tens of seconds
 * at 100,000 devices), and the whole cluster's writes must not wait for it.
 */
export class WriteTurns {
  private holder: (Ask & { since: number; started: boolean }) | null = null;
  private readonly queue: Ask[] = [];
  /** Grants passed on before their worker started them, by `slot:id`. */
  private readonly passed = new Set<string>();
  /** Passed-over grants their worker started after all (writing outside the turn), by `slot:id`: when each started. */
  private readonly late = new Map<string, number>();

  constructor(
    private readonly maxHoldMs = 30_000,
    readonly startMs = 200,
    private readonly lateMs = 1000,
    /**
     * The writer process (cluster-writer.ts): its ask goes ahead of the queue, so it writes after the
     * holder of the moment, not after every worker's ask (each a grant read late by a busy loop). It
     * asks again only after its turn is done, so the workers still get every other turn at least.
     */
    private readonly firstSlot: number | null = null,
  ) {}

  /** The worker read its grant and begins: the holder, or a passed-over worker that now writes late. */
  started(slot: number, id: number, now: number): void {
    if (this.holder?.slot === slot && this.holder.id === id) this.holder.started = true;
    else if (this.passed.delete(keyOf(slot, id))) this.late.set(keyOf(slot, id), now);
  }

  ask(slot: number, id: number, now: number): Ask | null {
    this.queue.push({ slot, id });
    return this.next(now);
  }

  done(slot: number, id: number, now: number): Ask | null {
    if (this.holder?.slot === slot && this.holder.id === id) this.holder = null;
    else this.late.delete(keyOf(slot, id));
    this.passed.delete(keyOf(slot, id));
    return this.next(now);
  }

  /** A worker died: its place in the queue and its turn go. */
  gone(slot: number, now: number): Ask | null {
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i].slot === slot) this.queue.splice(i, 1);
    if (this.holder?.slot === slot) this.holder = null;
    for (const set of [this.passed, this.late]) for (const k of set.keys()) if (k.startsWith(`${slot}:`)) set.delete(k);
    return this.next(now);
  }

  /** Called now and then: a turn not started within `startMs`, or held past `maxHoldMs`, passes on. Returns the holder passed over and the grant. */
  expire(now: number): { stuck: Ask; grant: Ask | null } | null {
    for (const [k, since] of this.late) {
      if (now - since < this.lateMs) continue;
      this.late.delete(k);
      const [slot, id] = k.split(':').map(Number);
      return { stuck: { slot, id }, grant: this.next(now) };
    }
    if (!this.holder || now - this.holder.since < (this.holder.started ? this.maxHoldMs : this.startMs)) return null;
    const stuck = { slot: this.holder.slot, id: this.holder.id };
    if (!this.holder.started) this.passed.add(keyOf(stuck.slot, stuck.id));
    this.holder = null;
    return { stuck, grant: this.next(now) };
  }

  get waiting(): number {
    return this.queue.length;
  }

  private next(now: number): Ask | null {
    if (this.holder || this.late.size > 0) return null;
    const ahead = this.firstSlot === null ? -1 : this.queue.findIndex((a) => a.slot === this.firstSlot);
    const first = ahead > 0 ? this.queue.splice(ahead, 1)[0] : this.queue.shift();
    if (!first) return null;
    this.holder = { ...first, since: now, started: false };
    return first;
  }
}

function keyOf(slot: number, id: number): string {
  return `${slot}:${id}`;
}
