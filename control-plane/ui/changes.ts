import { sql } from 'drizzle-orm';
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { ControlPlaneContext } from '../context.js';
import { HttpError, type AppEnv } from '../http.js';

type Listener = (version: string) => void;

/**
 * What the console's pages are made of changed: one fingerprint of the tables, read once a second
 * by one timer per process and only while a console is connected (primary-key and indexed
 * maxima: constant cost whatever the fleet's size). It sees changes made by other control planes
 * sharing the database too. Reports in this process mark it dirty at once (a campaign's counts
 * move with them); a notice goes out at least every `forceMs`, so counts that depend on time
 * (online, device timeouts) refresh as well.
 */
export class ChangeFeed {
  private readonly listeners = new Set<Listener>();
  private timer: NodeJS.Timeout | null = null;
  private last = '';
  private lastSent = 0;
  private dirty = false;
  private reading = false;
  private offReport: (() => void) | null = null;

  constructor(private readonly ctx: Pick<ControlPlaneContext, 'db' | 'events' | 'log'>, private readonly opts: { everyMs?: number; forceMs?: number; maxListeners?: number } = {}) {}

  get size(): number {
    return this.listeners.size;
  }

  subscribe(listener: Listener): () => void {
    if (this.listeners.size >= (this.opts.maxListeners ?? 200)) throw new HttpError(503, 'too-many-streams', 'too many console streams are open on this control plane; close some tabs');
    this.listeners.add(listener);
    if (!this.timer) this.start();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stop();
    };
  }

  private start(): void {
    this.offReport = this.ctx.events.on('report', () => (this.dirty = true));
    this.timer = setInterval(() => void this.check(), this.opts.everyMs ?? 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.offReport?.();
    this.offReport = null;
  }

  private async check(): Promise<void> {
    if (this.reading) return;
    this.reading = true;
    try {
      const [row] = await this.ctx.db.all<Record<string, number | null>>(sql`SELECT
        (SELECT max(id) FROM report_history) AS reports, (SELECT max(issued_at) FROM desired) AS desired,
        (SELECT max(updated_at) FROM campaigns) AS campaigns, (SELECT max(id) FROM audit_log) AS audit,
        (SELECT max(rowid) FROM devices) AS devices, (SELECT max(rowid) FROM manifests) AS manifests,
        (SELECT max(changed_at) FROM device_presence) AS presence`);
      const version = Object.values(row ?? {}).join(':');
      const now = Date.now();
      if (version !== this.last || this.dirty || now - this.lastSent >= (this.opts.forceMs ?? 5000)) {
        this.last = version;
        this.dirty = false;
        this.lastSent = now;
        for (const l of this.listeners) l(version);
      }
    } catch (err) {
      this.ctx.log.warn({ err }, 'console change feed read failed');
    } finally {
      this.reading = false;
    }
  }
}

/** The SSE answer: `change` notices, a comment every 15 s (proxies drop silent connections), until the client leaves. */
export function streamChanges(c: Context<AppEnv>, feed: ChangeFeed): Response {
  let unsubscribe: (() => void) | null = null;
  const pending: string[] = [];
  let wake: (() => void) | null = null;
  unsubscribe = feed.subscribe((version) => {
    if (pending.length < 2) pending.push(version);
    wake?.();
  });
  return streamSSE(c, async (stream) => {
    stream.onAbort(() => {
      unsubscribe?.();
      wake?.();
    });
    await stream.writeSSE({ event: 'hello', data: JSON.stringify({ role: c.var.actor.role }) });
    let id = 0;
    while (!stream.aborted && !stream.closed) {
      const version = pending.shift();
      if (version !== undefined) {
        await stream.writeSSE({ event: 'change', id: String(++id), data: JSON.stringify({ version }) });
        continue;
      }
      const woke = await new Promise<boolean>((resolve) => {
        const t = setTimeout(() => resolve(false), 15_000);
        wake = () => {
          clearTimeout(t);
          resolve(true);
        };
      });
      wake = null;
      if (!woke && !stream.aborted) await stream.write(': keep-alive\n\n');
    }
    unsubscribe?.();
  });
}
