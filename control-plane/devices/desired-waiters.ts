/**
 * Long polls waiting for a device's desired state to change. In memory, per device; woken after
 * an assignment commits in this process, and by the change feed (change-feed.ts) for one committed
 * by another process sharing the database.
 */
export class DesiredWaiters {
  private readonly byDevice = new Map<string, Set<() => void>>();
  /** Set at shutdown: polls stop waiting and answer with what they have. */
  closed = false;

  /** Resolves on wake-up or after `ms`; `signal` aborts early (client went away). */
  wait(deviceId: string, ms: number, signal?: AbortSignal): Promise<void> {
    return this.enter(deviceId, ms, signal).woken;
  }

  /**
   * Registers a waiter now (synchronously) and hands back its wake-up and a way to leave early. A
   * long poll enters before it reads its sequence, so no change can fall between the read and the wait.
   */
  enter(deviceId: string, ms: number, signal?: AbortSignal): { woken: Promise<void>; leave(): void } {
    if (this.closed) return { woken: Promise.resolve(), leave() {} };
    let done = () => {};
    const woken = new Promise<void>((resolve) => {
      let set = this.byDevice.get(deviceId);
      if (!set) this.byDevice.set(deviceId, (set = new Set()));
      done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        const s = this.byDevice.get(deviceId);
        if (s) {
          s.delete(done);
          if (s.size === 0) this.byDevice.delete(deviceId);
        }
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      set.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
    return { woken, leave: () => done() };
  }

  wake(deviceId: string): void {
    const set = this.byDevice.get(deviceId);
    if (!set) return;
    for (const done of [...set]) done();
  }

  has(deviceId: string): boolean {
    return this.byDevice.has(deviceId);
  }

  /** Answers every waiting poll now and makes later waits return at once. */
  close(): void {
    this.closed = true;
    this.wakeAll();
  }

  wakeAll(): void {
    for (const id of [...this.byDevice.keys()]) this.wake(id);
  }

  get size(): number {
    let n = 0;
    for (const s of this.byDevice.values()) n += s.size;
    return n;
  }
}
