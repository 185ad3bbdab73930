import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'libsql';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { migrate, openDatabase } from '../../control-plane/db/open.js';
import { createWriteQueue } from '../../control-plane/db/write-queue.js';
import { startLease } from '../../control-plane/lease.js';

/**
 * The lease's renewal against SQLite's lock held by another connection past the busy timeout, on a
 * real libSQL file (issue 17: at 100,000 devices the holder's renewal failed busy behind the other
 * processes' writes, it lapsed, and its successor's takeover began with a 50-write membership sweep).
 */
describe('a lease renewal that meets a busy database', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-lease-busy-'));
  const log = createLogger('control-plane', { level: 'silent' });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('tries again at once while the lease is still valid, and renews it', async () => {
    const file = join(dir, 'berth.db');
    const busyTimeoutMs = 200;
    const { client, db } = await openDatabase(`file:${file}`, { busyTimeoutMs });
    await migrate(client, log);
    const other = new Database(file);
    const { writeAlone } = createWriteQueue(db, log);
    const lease = startLease({ client, writeAlone, log, now: () => new Date() }, 'busy-lease', { ttlMs: 60_000, renewMs: 20_000, holder: 'host-e:5:v' });
    const changes: boolean[] = [];
    lease.onChange((held) => changes.push(held));
    const expiry = () => Number((other.prepare("SELECT expires_at FROM leases WHERE name = 'busy-lease'").get() as { expires_at: number }).expires_at);
    try {
      await lease.check();
      expect(lease.held).toBe(true);
      const before = expiry();
      // Another process holds the write lock for four busy timeouts: the first tries fail busy.
      other.exec('BEGIN IMMEDIATE');
      const release = setTimeout(() => other.exec('COMMIT'), 4 * busyTimeoutMs);
      try {
        await lease.check();
      } finally {
        clearTimeout(release);
        if (other.inTransaction) other.exec('COMMIT');
      }
      expect(expiry()).toBeGreaterThan(before);
      expect(lease.held).toBe(true);
      expect(changes).toEqual([true]);
    } finally {
      await lease.release();
      other.close();
      client.close();
    }
  });
});
