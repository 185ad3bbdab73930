import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'libsql';
import { sql } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { BatchedWrites } from '../../control-plane/db/batched-writes.js';
import { openDatabase } from '../../control-plane/db/open.js';
import { createWriteQueue } from '../../control-plane/db/write-queue.js';

/**
 * Batched writes (reports, enrollments) on a real libSQL file when the write they wait for fails
 * before it begins: another connection (another control plane on the file) holds the write lock
 * past the busy timeout.
 */
/** A hang fails with what hung, not with the test's timeout. */
async function settledWithin<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} never settled`)), 10_000)));
  try {
    return await Promise.race([p, hang]);
  } finally {
    clearTimeout(timer);
  }
}

describe('batched writes after a write that never began', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-batched-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses the batch that waited for it, and writes what comes next', async () => {
    const file = join(dir, 'batched.db');
    const { client, db } = await openDatabase(`file:${file}`, { busyTimeoutMs: 200 });
    await client.execute('CREATE TABLE kv (k TEXT PRIMARY KEY)');
    const other = new Database(file);
    try {
      const queue = createWriteQueue(db, createLogger('control-plane', { level: 'silent' }));
      const kv = new BatchedWrites<string, string>(
        queue,
        async (sp, items) => {
          for (const k of items) await sp.run(sql`INSERT INTO kv (k) VALUES (${k})`);
          return { outcomes: items, announce: () => undefined };
        },
        64,
      );

      other.exec('BEGIN IMMEDIATE');
      const refused = await settledWithin(Promise.allSettled([kv.submit('a'), kv.submit('b')]), 'the submits waiting for the busy write');
      other.exec('ROLLBACK');
      expect(refused.map((r) => r.status)).toEqual(['rejected', 'rejected']);
      expect(String((refused[0] as PromiseRejectedResult).reason)).toMatch(/SQLITE_BUSY/);

      // With the lock free again, the next submits are written (they waited for ever before).
      const written = await settledWithin(Promise.all([kv.submit('c'), kv.submit('d')]), 'the submits after the busy write');
      expect(written).toEqual(['c', 'd']);
      expect((await client.execute('SELECT k FROM kv ORDER BY k')).rows.map((r) => String(r.k))).toEqual(['c', 'd']);
    } finally {
      other.close();
      client.close();
    }
  });
});
