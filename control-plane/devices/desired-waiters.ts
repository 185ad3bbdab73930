/**
 * Long polls waiting for a device's desired state to change. In memory, per device; woken after
 * an assignment commits in this process, and by the change feed (change-feed.ts) for one committed
 * by another process sharing the database.
 */
/**
 * Why a waiter stopped waiting: `changed` (woken: its device may have changed, or the process is
 * stopping), `expired` (its time ran out with no wake-up: nothing committed since it entered), `left`.
 */
export type WakeReason = 'changed' | 'expired' | 'left';

/**
 * How a waiter learns that its client went away: an AbortSignal (the Hono route's request), or
 * anything as small with one listener at a time (desired-direct.ts's, made of the response's close
 * event instead of an AbortController per waiting poll).
 */
export interface Departure {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/**
 * Devices woken per turn of the event loop. A woken poll's answer (its document read and built,
 * synchronously on the embedded driver) runs in the microtasks of the turn that woke it, so a wave
 * of 18,000 woken in one turn stopped its worker's event loop for tens of seconds: no timer (the
 * lease's renewal), no other request (fleet-sim at 20,000 and 100,000, SCALING.md).
 */
const WAKE_BATCH = 50;

/**
 * Waits of at least SLOT_FROM_MS run out on a SLOT_MS boundary, at or before their time (up to
 * SLOT_MS early), all of a slot on one timer: 100,000 long polls of random lengths (desired-poll.ts
 * spreads them over the last fifth of the wait) were 100,000 timers, each its own list in Node's
 * timer queue and most of them a wake-up of the event loop for one 304; in slots the loop wakes
 * ten times a second and answers every renewal due in one turn. Shorter waits keep a timer of their own.
 */
const SLOT_MS = 100;
const SLOT_FROM_MS = 500;

/** One waiting poll. */
interface Waiter {
  readonly deviceId: string;
  readonly resolve: (reason: WakeReason) => void;
  readonly signal: Departure | undefined;
  /** The departure's listener (the same function is removed). */
  readonly left: () => void;
  /** The slot (absolute SLOT_MS boundaries) whose timer expires it, or -1 with a timer of its own. */
  slot: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  done: boolean;
}

export class DesiredWaiters {
  private readonly byDevice = new Map<string, Set<Waiter>>();
  /** Slot number → its waiters and its timer. */
  private readonly slots = new Map<number, { waiters: Set<Waiter>; timer: ReturnType<typeof setTimeout> }>();
  /** Set at shutdown: polls stop waiting and answer with what they have. */
  closed = false;
  /** Devices to wake, WAKE_BATCH a turn of the event loop. */
  private readonly toWake = new Set<string>();
  private waking = false;

  /** Resolves on wake-up or after `ms`; `signal` aborts early (client went away). */
  wait(deviceId: string, ms: number, signal?: Departure): Promise<WakeReason> {
    return this.enter(deviceId, ms, signal).woken;
  }

  /**
   * Registers a waiter now (synchronously) and hands back its wake-up and a way to leave early. A
   * long poll enters before it reads its sequence, so no change can fall between the read and the wait.
   */
  enter(deviceId: string, ms: number, signal?: Departure): { woken: Promise<WakeReason>; leave(): void } {
    if (this.closed) return { woken: Promise.resolve('changed'), leave() {} };
    let resolve!: (reason: WakeReason) => void;
    const woken = new Promise<WakeReason>((r) => (resolve = r));
    const w: Waiter = { deviceId, resolve, signal, left: () => this.finish(w, 'left'), slot: -1, timer: undefined, done: false };
    let set = this.byDevice.get(deviceId);
    if (!set) this.byDevice.set(deviceId, (set = new Set()));
    set.add(w);
    if (ms >= SLOT_FROM_MS) this.inSlot(w, Math.floor((Date.now() + ms) / SLOT_MS));
    else w.timer = setTimeout(() => this.finish(w, 'expired'), Math.max(0, ms));
    signal?.addEventListener('abort', w.left, { once: true });
    return { woken, leave: () => this.finish(w, 'left') };
  }

  private inSlot(w: Waiter, slot: number): void {
    w.slot = slot;
    let s = this.slots.get(slot);
    if (!s) {
      const waiters = new Set<Waiter>();
      const timer = setTimeout(() => {
        this.slots.delete(slot);
        for (const x of waiters) this.finish(x, 'expired');
      }, Math.max(0, slot * SLOT_MS - Date.now()));
      this.slots.set(slot, (s = { waiters, timer }));
    }
    s.waiters.add(w);
  }

  /** Ends a waiter once: out of every table, its listener removed, its promise resolved. */
  private finish(w: Waiter, reason: WakeReason): void {
    if (w.done) return;
    w.done = true;
    if (w.timer !== undefined) clearTimeout(w.timer);
    if (w.slot >= 0) {
      const s = this.slots.get(w.slot);
      if (s && s.waiters.delete(w) && s.waiters.size === 0) {
        clearTimeout(s.timer);
        this.slots.delete(w.slot);
      }
    }
    w.signal?.removeEventListener('abort', w.left);
    const set = this.byDevice.get(w.deviceId);
    if (set) {
      set.delete(w);
      if (set.size === 0) this.byDevice.delete(w.deviceId);
    }
    w.resolve(reason);
  }

  /** Wakes the device's waiting polls soon: in order, WAKE_BATCH devices a turn of the event loop. */
  wake(deviceId: string): void {
    if (!this.byDevice.has(deviceId)) return;
    this.toWake.add(deviceId);
    if (this.waking) return;
    this.waking = true;
    setImmediate(() => this.wakeSome());
  }

  private wakeSome(): void {
    let n = 0;
    for (const id of this.toWake) {
      this.toWake.delete(id);
      this.wakeNow(id);
      if (++n >= WAKE_BATCH) break;
    }
    if (this.toWake.size > 0) setImmediate(() => this.wakeSome());
    else this.waking = false;
  }

  private wakeNow(deviceId: string): void {
    const set = this.byDevice.get(deviceId);
    if (!set) return;
    for (const w of [...set]) this.finish(w, 'changed');
  }

  has(deviceId: string): boolean {
    return this.byDevice.has(deviceId);
  }

  /** Answers every waiting poll now and makes later waits return at once. */
  close(): void {
    this.closed = true;
    this.wakeAll();
  }

  /** Every waiting poll at once (shutdown, a feed lost for minutes). */
  wakeAll(): void {
    this.toWake.clear();
    for (const id of [...this.byDevice.keys()]) this.wakeNow(id);
  }

  get size(): number {
    let n = 0;
    for (const s of this.byDevice.values()) n += s.size;
    return n;
  }
}
