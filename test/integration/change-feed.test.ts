import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlPlaneContext } from '../../control-plane/context.js';
import { FEED_KEEP_MS, noteDesiredChanges, noteDesiredChangesOf, pruneDesiredChanges, tailDesiredChanges, type FeedTailer } from '../../control-plane/devices/change-feed.js';
import { acquireLease, startLease } from '../../control-plane/lease.js';
import { fileContext } from './file-context.js';

/**
 * The change feed and the lease on a real libSQL file, seen by two contexts (two processes' views
 * of one database): what the process tests (shared-database.test.ts) cannot reach quickly, such as
 * a backlog larger than one read, pruning, and a lease taken over by expiry alone.
 */
describe('change feed and lease on one database file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-feed-'));
  let writer: ControlPlaneContext;
  let reader: ControlPlaneContext;
  let tailer: FeedTailer;
  let skewMs = 0;
  const closes: (() => void)[] = [];

  beforeAll(async () => {
    const w = await fileContext(dir, 'feed.db');
    // The reader's clock can run ahead: the lease test lets a lease expire without waiting for it.
    const r = await fileContext(dir, 'feed.db', { now: () => new Date(Date.now() + skewMs) });
    writer = w.ctx;
    reader = r.ctx;
    closes.push(w.close, r.close);
    // A tick far away: the test reads the feed itself, with poll().
    tailer = tailDesiredChanges(reader, { tickMs: 3_600_000 });
    await tailer.poll();
  });

  afterAll(() => {
    tailer.stop();
    for (const c of closes) c();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Feed rows for `n` made-up devices `bulk-0…`, then `last` if given, in one transaction of the writer. */
  const bulk = (n: number, last?: string) =>
    writer.write(async (tx) => {
      const ids = sql`WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ${n}) SELECT 'bulk-' || i AS device_id FROM k`;
      await noteDesiredChangesOf(tx, ids, Date.now());
      if (last) await noteDesiredChanges(writer, tx, [last], Date.now());
    });

  it('wakes exactly the waiting polls of the devices another process changed', async () => {
    const a = reader.waiters.enter('dev-a', 60_000);
    const b = reader.waiters.enter('dev-b', 60_000);
    await writer.write((tx) => noteDesiredChanges(writer, tx, ['dev-a', 'dev-c'], Date.now()));
    await tailer.poll();
    await a.woken;
    expect(reader.waiters.has('dev-a')).toBe(false);
    expect(reader.waiters.has('dev-b')).toBe(true);
    b.leave();
  });

  it('reads a backlog larger than one query when a poll waits, and jumps over it when none does', async () => {
    const before = tailer.position;
    await bulk(12_000);
    await tailer.poll();
    expect(tailer.position).toBe(before + 12_000);

    const waiting = reader.waiters.enter('dev-late', 60_000);
    await bulk(12_000, 'dev-late');
    await tailer.poll();
    await waiting.woken;
    expect(tailer.position).toBe(before + 24_001);
  });

  it('prunes rows older than the window and never gives a seq out twice', async () => {
    const newest = tailer.position;
    await writer.write(async (tx) => {
      await tx.run(sql`UPDATE desired_changes SET at = ${Date.now() - FEED_KEEP_MS - 1000} WHERE seq <= ${newest - 10}`);
    });
    const pruned = await pruneDesiredChanges(writer, Date.now());
    // Seqs start at 1 and nothing was pruned before: every row up to newest - 10 goes.
    expect(pruned).toBe(newest - 10);
    const left = await writer.db.all<{ n: number }>(sql`SELECT count(*) AS n FROM desired_changes`);
    expect(Number(left[0].n)).toBe(10);
    // All of them old now: every row goes, and the next seq still follows the last one given out.
    await writer.write((tx) => tx.run(sql`UPDATE desired_changes SET at = 0`));
    await pruneDesiredChanges(writer, Date.now());
    expect(Number((await writer.db.all<{ n: number }>(sql`SELECT count(*) AS n FROM desired_changes`))[0].n)).toBe(0);
    const w = reader.waiters.enter('dev-after-prune', 60_000);
    await writer.write((tx) => noteDesiredChanges(writer, tx, ['dev-after-prune'], Date.now()));
    await tailer.poll();
    await w.woken;
    expect(tailer.position).toBe(newest + 1);
  });

  it('gives a lease to one holder at a time, and to another once it expires unrenewed', async () => {
    expect(await acquireLease(writer, 'test-lease', 'host-a:1:x', 5_000)).toBe(true);
    expect(await acquireLease(reader, 'test-lease', 'host-b:2:y', 5_000)).toBe(false);
    expect(await acquireLease(writer, 'test-lease', 'host-a:1:x', 5_000)).toBe(true);
    skewMs = 6_000;
    expect(await acquireLease(reader, 'test-lease', 'host-b:2:y', 5_000)).toBe(true);
    // The old holder's renewal finds the lease taken and a live holder: it has lost it.
    expect(await acquireLease(writer, 'test-lease', 'host-a:1:x', 5_000)).toBe(false);
    const row = await writer.db.all<{ holder: string }>(sql`SELECT holder FROM leases WHERE name = 'test-lease'`);
    expect(row[0].holder).toBe('host-b:2:y');
  });

  it('looks at a lease another holds without taking the write lock (it only waits)', async () => {
    expect(await acquireLease(writer, 'look-lease', 'host-a:1:x', 60_000)).toBe(true);
    // Another connection holds SQLite's write lock meanwhile (the holder of the workers' write turn).
    const other = await writer.client.transaction('write');
    try {
      expect(await acquireLease(reader, 'look-lease', 'host-b:2:y', 60_000)).toBe(false);
    } finally {
      await other.rollback();
      other.close();
    }
  });

  it('keeps holding a lease whose renewal waited long in the write queue (counted from the write)', async () => {
    // The holder's clock, moved by the test: its renewal waits 90 s in the queue (a loaded write queue, compressed).
    let clock = Date.now() + 60_000;
    const queued = { ...writer, now: () => new Date(clock), writeAlone: ((fn) => ((clock += 90_000), writer.writeAlone(fn))) as typeof writer.writeAlone };
    const lease = startLease(queued, 'slow-renewal', { ttlMs: 100_000, renewMs: 40_000, holder: 'host-c:3:z' });
    const changes: boolean[] = [];
    lease.onChange((held) => changes.push(held));
    try {
      await lease.check();
      expect(lease.held).toBe(true);
      // Each look renews late: counted from each look's start, every renewal came after ttl - renewMs and the lease flapped.
      await lease.check();
      await lease.check();
      expect(changes).toEqual([true]);
    } finally {
      await lease.release();
    }
  });

  it('steps down when its renewal hangs in the write queue past ttl - renewMs, without waiting for it', async () => {
    let clock = Date.now() + 300_000;
    let hang = false;
    let unblock = () => {};
    const blocked = new Promise<void>((resolve) => (unblock = resolve));
    // The first look writes; later renewals wait for the write lock (held elsewhere), compressed.
    const stuck = { ...writer, now: () => new Date(clock), writeAlone: ((fn) => (hang ? blocked.then(() => writer.writeAlone(fn)) : writer.writeAlone(fn))) as typeof writer.writeAlone };
    const lease = startLease(stuck, 'hung-renewal', { ttlMs: 100_000, renewMs: 40_000, holder: 'host-d:4:w' });
    const changes: boolean[] = [];
    lease.onChange((held) => changes.push(held));
    try {
      await lease.check();
      expect(lease.held).toBe(true);
      hang = true;
      const renewal = lease.check();
      clock += 59_000;
      expect(lease.held).toBe(true);
      // Past ttl - renewMs since the last written renewal: no longer held, though the renewal has not returned.
      clock += 2_000;
      expect(lease.held).toBe(false);
      expect(changes).toEqual([true, false]);
      unblock();
      await renewal;
    } finally {
      unblock();
      await lease.release();
    }
  });
  it('takes and renews the lease while the write queue waits for a write turn that does not come', async () => {
    // The process's queued writes stand still (another worker kept the turn, its event loop stalled).
    const queueStuck = { ...writer, write: (() => new Promise(() => undefined)) as typeof writer.write };
    const lease = startLease(queueStuck, 'stuck-queue', { ttlMs: 100_000, renewMs: 40_000, holder: 'host-e:5:v' });
    try {
      await lease.check();
      expect(lease.held).toBe(true);
      await lease.check();
      const row = await writer.db.all<{ holder: string }>(sql`SELECT holder FROM leases WHERE name = 'stuck-queue'`);
      expect(row[0].holder).toBe('host-e:5:v');
    } finally {
      await lease.release();
    }
    expect((await writer.db.all(sql`SELECT holder FROM leases WHERE name = 'stuck-queue'`)).length).toBe(0);
  });
});
