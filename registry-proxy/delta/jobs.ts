import type { Logger } from '../../common/log.js';
import { SerialQueue } from '../../common/serial-queue.js';

/**
 * The proxy's delta work (layer path listings, delta computations): one job at a time, so a
 * burst of new pairs costs one CPU, and one job per key however many requests want it.
 */
export class DeltaJobs {
  private readonly queue: SerialQueue;
  private readonly running = new Map<string, Promise<unknown>>();

  constructor(log: Logger) {
    this.queue = new SerialQueue({ onError: (err, label) => log.error({ err: (err as Error).message, job: label }, 'delta job failed') });
  }

  has(key: string): boolean {
    return this.running.has(key);
  }

  /** Joins the job of `key` or queues `work` under it; settles with its outcome. */
  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const existing = this.running.get(key);
    if (existing) return existing as Promise<T>;
    const p = new Promise<T>((resolve, reject) => {
      this.queue.push(key, async () => {
        try {
          resolve(await work());
        } catch (err) {
          reject(err);
        }
      });
    }).finally(() => this.running.delete(key));
    // Callers may not wait for the outcome (a plan answers "pending"); the next one reads it.
    p.catch(() => undefined);
    this.running.set(key, p);
    return p;
  }

  stop(): void {
    this.queue.stop();
  }

  idle(): Promise<void> {
    return this.queue.idle();
  }
}
