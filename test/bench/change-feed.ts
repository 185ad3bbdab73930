import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { noteDesiredChangesOf, tailDesiredChanges } from '../../control-plane/devices/change-feed.js';
import { clientPointReads } from '../../control-plane/db/point-reads.js';
import { fileContext } from '../integration/file-context.js';
import { compare, repeat, stat, type Bench, type BenchRow } from './stats.js';

/**
 * What waiting long polls cost a control plane (issue 17), on a real libSQL file seen by two
 * contexts (a writer and a tailing reader, as two processes sharing the database). The change
 * feed reads one primary-key range every 250 ms whatever the number of waiting polls; the
 * baseline is the design it replaced, where every waiting poll re-read its own row every 2 s.
 * The embedded driver runs synchronously, so elapsed time is the event loop's time.
 */

async function elapsed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

export const bench: Bench = {
  name: 'change-feed',
  title: 'long polls waiting on the change feed',
  async run({ quick, log }) {
    const n = quick ? 10_000 : 100_000;
    const runs = quick ? 1 : 3;
    const dir = mkdtempSync(join(tmpdir(), 'berth-bench-feed-'));
    const w = await fileContext(dir, 'feed.db');
    const r = await fileContext(dir, 'feed.db');
    const tailer = tailDesiredChanges(r.ctx, { tickMs: 3_600_000 });
    try {
      const devices = sql`WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ${n}) SELECT 'dev-' || i AS device_id FROM k`;
      await w.ctx.write(async (tx) => {
        await tx.run(sql`INSERT INTO manifests (id, name, version, digest, spec, source, published_at, published_by) VALUES ('m1', 'app', '1.0.0', 'sha256:0', '{}', '', 0, 'bench')`);
        await tx.run(sql`INSERT INTO devices (id, serial, public_key, labels, status, created_at, token_epoch) SELECT device_id, device_id, 'k', '{}', 'enrolled', 0, 0 FROM (${devices})`);
        await tx.run(sql`INSERT INTO desired (device_id, manifest_id, sequence, issued_at) SELECT device_id, 'm1', 1, 0 FROM (${devices})`);
      });
      await tailer.poll();
      log(`${n} devices, each with a waiting long poll`);
      const enterAll = () => Array.from({ length: n }, (_, i) => r.ctx.waiters.enter(`dev-${i}`, 600_000));
      let waiting = enterAll();

      // One second of waiting: 4 feed reads, against n / 2 row reads (each poll every 2 s).
      const feed = await repeat(runs, () => elapsed(async () => {
        for (let i = 0; i < 4; i++) await tailer.poll();
      }));
      // The row read a poll made before the feed, through the client as then.
      const reads = clientPointReads(r.ctx.client);
      const perPoll = await repeat(runs, () => elapsed(async () => {
        for (let i = 0; i < n / 2; i++) await reads.desiredSequence(`dev-${i}`);
      }));
      const rows: BenchRow[] = [compare('change-feed', `event-loop time per second with ${n} waiting long polls`, 'ms', feed, 'each poll re-reads every 2 s (issue 17: before)', perPoll, 'lower is better; the feed costs the same at any number of waiters')];

      // A wave to every device, committed by the other context: the tailer wakes every waiter.
      const wave: number[] = [];
      for (let i = 0; i < runs; i++) {
        await w.ctx.write((tx) => noteDesiredChangesOf(tx, devices, Date.now()));
        wave.push(await elapsed(async () => {
          await tailer.poll();
          await Promise.all(waiting.map((x) => x.woken));
        }));
        waiting = enterAll();
      }
      rows.push({ bench: 'change-feed', metric: `read a wave of ${n} changes and wake their ${n} polls`, unit: 'ms', berth: stat(wave), note: 'in batches of 5,000, a turn of the event loop between them' });
      for (const x of waiting) x.leave();
      return rows;
    } finally {
      tailer.stop();
      w.close();
      r.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
