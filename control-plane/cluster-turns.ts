import type { Logger } from '../common/log.js';
import { WriteTurns, type TurnMessage } from './write-turns.js';

/** A write turn held longer is logged by the primary. */
const SLOW_TURN_MS = 1000;

/**
 * The primary's side of the cluster's write turns (write-turns.ts decides; this sends the grants and
 * keeps the timers): a worker's ask, started and done in, `yours` out.
 */
export class TurnDesk {
  private readonly turns: WriteTurns;
  /** When each slot was last given the write turn (the slow-turn log). */
  private readonly granted = new Map<number, number>();
  /** The last grant while its worker has not said `started`, and the one timer that checks it (checkStartIn). */
  private unstarted: { slot: number; at: number } | undefined;
  private startCheck: NodeJS.Timeout | undefined;
  private readonly watch: NodeJS.Timeout;

  constructor(
    /** The writer process's slot: its asks go first (write-turns.ts). */
    writerSlot: number,
    /** Sends to a slot's worker if it is there. */
    private readonly sendTo: (slot: number, msg: TurnMessage) => void,
    private readonly log: Logger,
  ) {
    this.turns = new WriteTurns(undefined, undefined, undefined, writerSlot);
    // A turn held for 30 s is a stuck transaction: the next worker goes (SQLite's lock still orders
    // them). An unstarted grant is passed on by checkStartIn; this catches any left over, and every
    // second a late writer's hold on the grants (write-turns.ts, lateMs) ends on this check.
    this.watch = setInterval(() => {
      const expired = this.turns.expire(Date.now());
      if (!expired) return;
      log.warn({ worker: expired.stuck.slot }, `worker ${expired.stuck.slot} held the write turn past its limit (not started within ${this.turns.startMs} ms, or 30 s); passing it on`);
      this.grant(expired.grant);
    }, 1000);
    this.watch.unref();
  }

  /** A worker's turn message. */
  receive(slot: number, msg: TurnMessage): void {
    const now = Date.now();
    if (msg.kind === 'started') {
      this.turns.started(slot, msg.id, now);
      if (this.unstarted?.slot === slot) this.unstarted = undefined;
    } else if (msg.kind === 'ask') this.grant(this.turns.ask(slot, msg.id, now));
    else if (msg.kind === 'done') {
      const since = this.granted.get(slot);
      this.granted.delete(slot);
      // Measured here, from the grant to the done: the worker's own log line says what it ran, and the gap between the two is the IPC and the worker's loop.
      if (since !== undefined && now - since > SLOW_TURN_MS) this.log.warn({ worker: slot, heldMs: now - since, waiting: this.turns.waiting }, `worker ${slot} held the write turn ${now - since} ms`);
      this.grant(this.turns.done(slot, msg.id, now));
    }
  }

  /** A worker died: its turn and its place in the queue go. */
  gone(slot: number): void {
    this.grant(this.turns.gone(slot, Date.now()));
  }

  close(): void {
    clearInterval(this.watch);
    clearTimeout(this.startCheck);
  }

  private grant(to: { slot: number; id: number } | null): void {
    if (!to) return;
    const now = Date.now();
    this.granted.set(to.slot, now);
    this.unstarted = { slot: to.slot, at: now };
    this.sendTo(to.slot, { berth: 'write-turn', kind: 'yours', id: to.id });
    this.checkStartIn(this.turns.startMs + 1);
  }

  /**
   * Not started within startMs (its loop busy): the next worker goes (write-turns.ts). One timer for
   * the grant not started yet, not one per grant: a grant is started within a few ms, and a timer per
   * grant woke the otherwise idle primary once more per commit (issue 17).
   */
  private checkStartIn(ms: number): void {
    this.startCheck ??= setTimeout(() => {
      this.startCheck = undefined;
      const passed = this.turns.expire(Date.now());
      if (passed) this.grant(passed.grant);
      else if (this.unstarted) this.checkStartIn(Math.max(1, this.unstarted.at + this.turns.startMs + 1 - Date.now()));
    }, ms).unref();
  }
}
