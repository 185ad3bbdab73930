import { setImmediate as turn } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import type { Logger } from '../../common/log.js';
import type { Write } from '../db/write-queue.js';

const CHUNK = 400;
/** Sightings per write transaction. */
const PER_WRITE = 2000;

/**
 * When each device was last heard from. Polls are the bulk of the traffic and a write per poll
 * would cost a commit each, so sightings collect in memory and go to `devices.last_seen_at` in one
 * batched write per interval. Readers merge the pending value, so this process is never stale.
 */
export class LastSeen {
  private pending = new Map<string, number>();

  touch(deviceId: string, at: number): void {
    const cur = this.pending.get(deviceId);
    if (cur === undefined || cur < at) this.pending.set(deviceId, at);
  }

  /** The later of the stored time and a pending one. */
  merged(deviceId: string, stored: number | null): number | null {
    const p = this.pending.get(deviceId);
    if (p === undefined) return stored;
    return stored === null ? p : Math.max(stored, p);
  }

  get size(): number {
    return this.pending.size;
  }

  async flush(write: Write): Promise<number> {
    if (this.pending.size === 0) return 0;
    const batch = [...this.pending];
    this.pending = new Map();
    // A write per PER_WRITE sightings, a turn of the event loop between: a flush of a large fleet's
    // sightings (tens of thousands of scattered rows) never holds the loop and the writer in one
    // long transaction (issue 17). A sighting needs no atomicity with another.
    for (let i = 0; i < batch.length; i += PER_WRITE) {
      const part = batch.slice(i, i + PER_WRITE);
      try {
        await write(async (tx) => {
          for (let j = 0; j < part.length; j += CHUNK) {
            const rows = part.slice(j, j + CHUNK).map(([id, at]) => sql`(${id}, ${at})`);
            await tx.run(sql`UPDATE devices SET last_seen_at = max(coalesce(devices.last_seen_at, 0), v.column2)
              FROM (VALUES ${sql.join(rows, sql`, `)}) AS v WHERE devices.id = v.column1`);
          }
        });
      } catch (err) {
        // Put back what was not written (keeping any newer sighting) so the next flush retries.
        for (const [id, at] of batch.slice(i)) this.touch(id, at);
        throw err;
      }
      if (i + PER_WRITE < batch.length) await turn();
    }
    return batch.length;
  }
}

/** Flushes `seen` every `everyMs` and once more at stop. */
export function startLastSeenFlusher(ctx: { seen: LastSeen; write: Write; log: Logger }, everyMs: number): { stop(): Promise<void> } {
  const timer = setInterval(() => {
    ctx.seen.flush(ctx.write).catch((err: unknown) => ctx.log.warn({ err }, 'last-seen flush failed'));
  }, everyMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await ctx.seen.flush(ctx.write);
    },
  };
}
