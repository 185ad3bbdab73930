/**
 * Long polls waiting for a device's desired state to change. In memory, per device; woken after
 * an assignment commits. A change made by another process is found by the poll's own re-reads.
 */
export class DesiredWaiters {
  private readonly byDevice = new Map<string, Set<() => void>>();
  /** Set at shutdown: polls stop waiting and answer with what they have. */
  closed = false;

  /** Resolves on wake-up or after `ms`; `signal` aborts early (client went away). */
  wait(deviceId: string, ms: number, signal?: AbortSignal): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      let set = this.byDevice.get(deviceId);
      if (!set) this.byDevice.set(deviceId, (set = new Set()));
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        const s = this.byDevice.get(deviceId);
        if (s) {
          s.delete(done);
          if (s.size === 0) this.byDevice.delete(deviceId);
        }
        resolve();
      };
      const timer = setTimeout(done, ms);
      set.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
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
