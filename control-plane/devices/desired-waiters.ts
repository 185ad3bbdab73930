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
 * Devices woken per turn of the event loop. A woken poll's answer (its document read and built,
 * synchronously on the embedded driver) runs in the microtasks of the turn that woke it, so a wave
 * of 18,000 woken in one turn stopped its worker's event loop for tens of seconds: no timer (the
 * lease's renewal), no other request (fleet-sim at 20,000 and 100,000, SCALING.md).
 */
const WAKE_BATCH = 50;

export class DesiredWaiters {
  private readonly byDevice = new Map<string, Set<(reason: WakeReason) => void>>();
  /** Set at shutdown: polls stop waiting and answer with what they have. */
  closed = false;
  /** Devices to wake, WAKE_BATCH a turn of the event loop. */
  private readonly toWake = new Set<string>();
  private waking = false;

  /** Resolves on wake-up or after `ms`; `signal` aborts early (client went away). */
  wait(deviceId: string, ms: number, signal?: AbortSignal): Promise<WakeReason> {
    return this.enter(deviceId, ms, signal).woken;
  }

  /**
   * Registers a waiter now (synchronously) and hands back its wake-up and a way to leave early. A
   * long poll enters before it reads its sequence, so no change can fall between the read and the wait.
   */
  enter(deviceId: string, ms: number, signal?: AbortSignal): { woken: Promise<WakeReason>; leave(): void } {
    if (this.closed) return { woken: Promise.resolve('changed'), leave() {} };
    let done = (_reason: WakeReason) => {};
    const woken = new Promise<WakeReason>((resolve) => {
      let set = this.byDevice.get(deviceId);
      if (!set) this.byDevice.set(deviceId, (set = new Set()));
      const left = () => done('left');
      done = (reason) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', left);
        const s = this.byDevice.get(deviceId);
        if (s) {
          s.delete(done);
          if (s.size === 0) this.byDevice.delete(deviceId);
        }
        resolve(reason);
      };
      const timer = setTimeout(() => done('expired'), Math.max(0, ms));
      set.add(done);
      signal?.addEventListener('abort', left, { once: true });
    });
    return { woken, leave: () => done('left') };
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
    for (const done of [...set]) done('changed');
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
