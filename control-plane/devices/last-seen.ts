import { setImmediate as turn } from 'node:timers/promises';
import type { Logger } from '../../common/log.js';
import { placeholderRows, Statement } from '../db/statement.js';
import type { Write } from '../db/write-queue.js';
import type { RemoteBatches } from '../cluster-batches.js';

const CHUNK = 400;
/** Sightings per write transaction. */
const PER_WRITE = 2000;

/**
 * When each device was last heard from. Polls are the bulk of the traffic and a write per poll
 * would cost a commit each, so sightings collect in memory and go to `device_sightings` in one
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

  /** Writes the pending sightings in this process. */
  flush(write: Write): Promise<number> {
    return this.flushTo(sightingsWrite(write));
  }

  /** Writes the pending sightings through `writeRows` (with `--workers N`: the writer process, cluster-batches.ts). */
  async flushTo(writeRows: (rows: Sighting[]) => Promise<void>): Promise<number> {
    if (this.pending.size === 0) return 0;
    // In key order: the upsert walks the narrow table's B-tree pages in order, each page once.
    const batch = [...this.pending].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.pending = new Map();
    // A write per PER_WRITE sightings, a turn of the event loop between: a flush of a large fleet's
    // sightings never holds the loop and the writer in one long transaction (issue 17). A sighting
    // needs no atomicity with another.
    for (let i = 0; i < batch.length; i += PER_WRITE) {
      try {
        await writeRows(batch.slice(i, i + PER_WRITE));
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

/** A device and when it was seen (ms). */
export type Sighting = [string, number];

/** One write of sightings (at most PER_WRITE, in key order) in this process's write queue. */
export function sightingsWrite(write: Write): (rows: Sighting[]) => Promise<void> {
  return (rows) =>
    write(async (tx) => {
      for (let j = 0; j < rows.length; j += CHUNK) await tx.run(upsertSightings(rows.slice(j, j + CHUNK)));
    });
}

/**
 * Sightings into the narrow `device_sightings` table (db/schema.ts): one row per device, a row only
 * rewritten when the sighting is later than the stored one (a page whose rows did not change is not
 * written to the WAL). The join drops the sightings of devices removed
 * since (the foreign key would fail the whole write).
 */
function upsertSightings(rows: [string, number][]): Statement {
  // Built by hand (db/statement.ts): drizzle's template walked 800 chunks for each 400 rows.
  return new Statement(
    `INSERT INTO device_sightings (device_id, last_seen_at)
    SELECT v.column1, v.column2 FROM (VALUES ${placeholderRows('(?, ?)', rows.length)}) AS v JOIN devices d ON d.id = v.column1 WHERE true
    ON CONFLICT (device_id) DO UPDATE SET last_seen_at = excluded.last_seen_at WHERE excluded.last_seen_at > device_sightings.last_seen_at`,
    rows.flat(),
  );
}

/** Flushes `seen` every `everyMs` and once more at stop; with `--workers N` through the writer process (cluster-batches.ts). */
export function startLastSeenFlusher(ctx: { seen: LastSeen; write: Write; log: Logger; batches?: RemoteBatches }, everyMs: number): { stop(): Promise<void> } {
  const remote = ctx.batches;
  const writeRows = remote ? (rows: Sighting[]) => remote.submit<void>('sightings', rows) : sightingsWrite(ctx.write);
  const timer = setInterval(() => {
    ctx.seen.flushTo(writeRows).catch((err: unknown) => ctx.log.warn({ err }, 'last-seen flush failed'));
  }, everyMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await ctx.seen.flushTo(writeRows);
    },
  };
}
