import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import Database from 'libsql';
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/libsql';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { createWriteQueue } from '../../control-plane/db/write-queue.js';
import { onNextCommit, withTimedWriteLock } from '../../control-plane/db/writer.js';

/**
 * The cluster's write turn and the commit's WAL sync (control-plane/db/write-queue.ts, writer.ts),
 * on a real libSQL file: the turn is given back once the COMMIT returned, before the WAL's sync, so
 * another worker writes while this one's sync runs; the write itself is answered only after its sync.
 */
describe('a group commit holding the write turn', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-turn-sync-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function setup(name: string, turnBackAtCommit = true) {
    const file = join(dir, name);
    const syncs: (() => void)[] = [];
    const plain = createClient({ url: `file:${file}` });
    await plain.execute('PRAGMA journal_mode=WAL');
    await plain.execute('CREATE TABLE kv (k TEXT PRIMARY KEY)');
    const client = withTimedWriteLock(plain, file, 1000, () => ({ sync: () => new Promise<number>((resolve) => syncs.push(() => resolve(0))), close: () => undefined }));
    const events: string[] = [];
    /** Whether another process could take SQLite's write lock at this moment. */
    const lockFree = (): boolean => {
      const other = new Database(file, { timeout: 0 } as ConstructorParameters<typeof Database>[1]);
      try {
        other.exec('BEGIN IMMEDIATE; ROLLBACK');
        return true;
      } catch {
        return false;
      } finally {
        other.close();
      }
    };
    const turn = async () => {
      events.push('turn taken');
      return () => void events.push(`turn given back, lock ${lockFree() ? 'free' : 'held'}`);
    };
    const queue = createWriteQueue(drizzle(client), createLogger('test', { level: 'silent' }), turn, { turnBackAtCommit });
    return { file, plain, client, syncs, events, queue };
  }

  it('gives the turn back after the COMMIT, before its WAL sync, and answers the write after the sync', async () => {
    const { file, plain, client, syncs, events, queue } = await setup('turn.db');
    try {
      const written = queue
        .write(async (tx) => {
          await tx.run(sql`INSERT INTO kv (k) VALUES ('a')`);
          events.push('written');
        })
        .then(() => void events.push('answered'));
      for (let i = 0; i < 50 && syncs.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(syncs).toHaveLength(1);
      // The sync is under way: the turn is back (SQLite's lock already free), the write not answered yet.
      expect(events).toEqual(['turn taken', 'written', 'turn given back, lock free']);
      // Another process may write now.
      const other = new Database(file, { timeout: 0 } as ConstructorParameters<typeof Database>[1]);
      other.exec("BEGIN IMMEDIATE; INSERT INTO kv (k) VALUES ('b'); COMMIT");
      other.close();
      // A transaction begun outside the queue (the lease's writeAlone, after the group) does not give the turn back again.
      const alone = queue.writeAlone(async (tx) => void (await tx.run(sql`INSERT INTO kv (k) VALUES ('c')`)));
      syncs[0]();
      for (let i = 0; i < 50 && syncs.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      syncs[1]();
      await Promise.all([written, alone]);
      expect(events).toEqual(['turn taken', 'written', 'turn given back, lock free', 'answered']);
      expect((await plain.execute('SELECT k FROM kv ORDER BY k')).rows.map((r) => r.k)).toEqual(['a', 'b', 'c']);
    } finally {
      client.close();
    }
  });

  it('keeps the turn through the sync unless asked to give it back at the COMMIT', async () => {
    const { client, syncs, events, queue } = await setup('kept.db', false);
    try {
      const written = queue.write(async (tx) => void (await tx.run(sql`INSERT INTO kv (k) VALUES ('a')`)));
      for (let i = 0; i < 50 && syncs.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(events).toEqual(['turn taken']);
      syncs[0]();
      await written;
      expect(events).toEqual(['turn taken', 'turn given back, lock free']);
    } finally {
      client.close();
    }
  });

  it('gives the turn back once when the group rolls back, and a client of its own has no commit notice', async () => {
    const { plain, client, syncs, events, queue } = await setup('rollback.db');
    try {
      await expect(queue.write(async (tx) => {
        await tx.run(sql`INSERT INTO kv (k) VALUES ('a')`);
        throw new Error('refused');
      })).rejects.toThrow('refused');
      expect(events).toEqual(['turn taken', 'turn given back, lock free']);
      expect(syncs).toHaveLength(0);
      expect((await plain.execute('SELECT count(*) AS n FROM kv')).rows[0].n).toBe(0);
      expect(onNextCommit(plain, () => undefined)).toBe(false);
      expect(onNextCommit(client, null)).toBe(true);
    } finally {
      client.close();
    }
  });
});
