/**
 * Jobs run one at a time in the order they were pushed: the daemon's apply/reconcile work and the
 * campaign scheduler's advances must never overlap, and neither may a failing job stop the ones
 * behind it.
 */
export interface SerialQueueOptions {
  /** A job threw. `stopped` says the queue was stopped meanwhile (shutdown cut the job short). */
  onError(err: unknown, label: string, stopped: boolean): void;
  /** Stops the queue when it fires (same as `stop()`). */
  signal?: AbortSignal;
}

export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();
  private count = 0;
  private halted = false;

  constructor(private readonly opts: SerialQueueOptions) {}

  /** Queues `job`; it runs after every job pushed before it, unless the queue is stopped by then. */
  push(label: string, job: () => Promise<void>): void {
    if (this.stopped) return;
    this.count += 1;
    this.tail = this.tail.then(async () => {
      try {
        if (!this.stopped) await job();
      } catch (err) {
        this.opts.onError(err, label, this.stopped);
      } finally {
        this.count -= 1;
      }
    });
  }

  /** Jobs queued or running. */
  get size(): number {
    return this.count;
  }

  get stopped(): boolean {
    return this.halted || this.opts.signal?.aborted === true;
  }

  /** Resolves once every job pushed so far has run (or was skipped because the queue stopped). */
  idle(): Promise<void> {
    return this.tail;
  }

  /** Jobs not yet started are skipped; the running one finishes. */
  stop(): void {
    this.halted = true;
  }
}
