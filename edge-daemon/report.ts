import { setTimeout as sleep } from 'node:timers/promises';
import { retry, type BackoffPolicy } from '../common/backoff.js';
import { retryAfterOf } from './control.js';
import type { Logger } from './gateway-log.js';
import type { DeviceReport } from '../protocol/device.js';
import { isoTime } from './iso-time.js';
import type { StateDir } from './state.js';

export type ReportBody = Omit<DeviceReport, 'sequence' | 'at'>;

/** Between attempts to deliver the oldest queued report; every delivered one starts it over. */
const DELIVERY_BACKOFF: BackoffPolicy = { baseMs: 500, capMs: 30_000, jitter: 0.5 };

export interface ReporterOptions {
  state: StateDir;
  log: Logger;
  /** Builds the body from what the daemon knows and the engine shows at that moment. */
  build: () => Promise<ReportBody>;
  send: (r: DeviceReport) => Promise<void>;
  minIntervalMs?: number;
  heartbeatMs?: number;
  /** Reports kept while the control plane is unreachable; each is a full snapshot, so the oldest go first. */
  maxQueue?: number;
}

/**
 * Reported state, on change (throttled) and as a heartbeat. Sequences stay strictly increasing
 * across restarts (persisted before a report leaves). While offline, reports queue in memory
 * (bounded) and are delivered in order once the control plane answers again.
 */
export class Reporter {
  private sequence = 0;
  private readonly queue: DeviceReport[] = [];
  private lastBuilt = 0;
  private pendingTimer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private draining = false;
  private closed = false;
  private building: Promise<void> = Promise.resolve();
  private readonly abort = new AbortController();

  constructor(private readonly opts: ReporterOptions) {}

  async start(): Promise<void> {
    this.sequence = await this.opts.state.loadReportSequence();
    this.heartbeat = setInterval(() => this.changed(), this.opts.heartbeatMs ?? 30_000);
    this.heartbeat.unref();
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Something changed: a report goes out now, or as soon as the throttle allows. */
  changed(): void {
    if (this.closed || this.pendingTimer) return;
    const wait = Math.max(0, this.lastBuilt + (this.opts.minIntervalMs ?? 500) - Date.now());
    this.pendingTimer = setTimeout(() => {
      this.pendingTimer = undefined;
      this.building = this.building.then(() => this.snapshot()).catch((err: unknown) => this.opts.log.warn({ err }, 'report not built'));
    }, wait);
  }

  private async snapshot(): Promise<void> {
    if (this.closed) return;
    this.lastBuilt = Date.now();
    const body = await this.opts.build();
    this.sequence += 1;
    await this.opts.state.saveReportSequence(this.sequence);
    this.queue.push({ ...body, sequence: this.sequence, at: isoTime() });
    const max = this.opts.maxQueue ?? 256;
    if (this.queue.length > max) this.queue.splice(0, this.queue.length - max);
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (this.queue.length && !this.closed) {
        // The oldest report still queued at each attempt (the bound may have dropped the one that failed).
        await retry(() => this.opts.send(this.queue[0]), {
          policy: DELIVERY_BACKOFF,
          signal: this.abort.signal,
          notBefore: retryAfterOf,
          onRetry: ({ error }) => this.opts.log.debug({ err: (error as Error).message, queued: this.queue.length }, 'report not delivered; will retry'),
        });
        this.queue.shift();
      }
    } catch {
      // Only closing ends the retries; what is still queued is not delivered.
    } finally {
      this.draining = false;
    }
  }

  /** Builds a report now (whatever the throttle says) and waits until the queue is delivered. */
  async flush(timeoutMs = 5000): Promise<void> {
    this.building = this.building.then(() => this.snapshot());
    await this.building;
    const until = Date.now() + timeoutMs;
    while (this.queue.length && Date.now() < until) await sleep(50);
    if (this.queue.length) throw new Error(`${this.queue.length} reports not delivered within ${timeoutMs} ms`);
  }

  /** Sends one last report (best effort, bounded) and stops. */
  async close(final = true): Promise<void> {
    if (this.pendingTimer) clearTimeout(this.pendingTimer);
    this.pendingTimer = undefined;
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.building;
    if (final) {
      await this.snapshot().catch(() => undefined);
      const until = Date.now() + 2000;
      while (this.queue.length && Date.now() < until && this.draining) await sleep(50);
    }
    this.closed = true;
    this.abort.abort();
  }
}
