import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import Database from 'libsql';
import { afterAll, describe, expect, it } from 'vitest';
import { syncWal, withTimedWriteLock } from '../../control-plane/db/writer.js';

/**
 * The commit's WAL sync off the event loop (control-plane/db/writer.ts), on real libSQL files: a
 * writer connection on a WAL file commits with synchronous=NORMAL and its commit resolves only once
 * the WAL is synced; a file in another journal mode keeps FULL and no sync of ours.
 */
describe('a write transaction on an embedded file', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-wal-sync-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function open(name: string, journal: 'WAL' | 'DELETE') {
    const file = join(dir, name);
    const syncs: { path: string; done: () => void }[] = [];
    const sync = (path: string) => new Promise<void>((resolve) => syncs.push({ path, done: resolve }));
    const plain = createClient({ url: `file:${file}` });
    await plain.execute(`PRAGMA journal_mode=${journal}`);
    await plain.execute('CREATE TABLE kv (k TEXT PRIMARY KEY)');
    return { file, syncs, client: withTimedWriteLock(plain, file, 1000, sync) };
  }

  it('on a WAL file: synchronous=NORMAL, and the commit resolves only after the WAL is synced', async () => {
    const { file, syncs, client } = await open('wal.db', 'WAL');
    try {
      const tx = await client.transaction('write');
      expect(Number((await tx.execute('PRAGMA synchronous')).rows[0][0])).toBe(1);
      await tx.execute({ sql: 'INSERT INTO kv (k) VALUES (?)', args: ['a'] });
      let committed = false;
      const commit = tx.commit().then(() => (committed = true));
      for (let i = 0; i < 5 && syncs.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(syncs.map((s) => s.path)).toEqual([`${file}-wal`]);
      await new Promise((r) => setTimeout(r, 20));
      expect(committed).toBe(false);
      // Written (another connection sees it) before it is synced: what the ack waits for is the sync.
      const other = new Database(file);
      expect(other.prepare('SELECT k FROM kv').all()).toEqual([{ k: 'a' }]);
      other.close();
      syncs[0].done();
      await commit;
      expect(committed).toBe(true);
    } finally {
      client.close();
    }
  });

  it('on a file in another journal mode: FULL as SQLite has it, and no sync of ours', async () => {
    const { syncs, client } = await open('delete.db', 'DELETE');
    try {
      const tx = await client.transaction('write');
      expect(Number((await tx.execute('PRAGMA synchronous')).rows[0][0])).toBe(2);
      await tx.execute({ sql: 'INSERT INTO kv (k) VALUES (?)', args: ['a'] });
      await tx.commit();
      expect(syncs).toEqual([]);
      expect((await client.execute('SELECT k FROM kv')).rows.map((r) => r.k)).toEqual(['a']);
    } finally {
      client.close();
    }
  });

  it('syncs a real WAL file, and fails for one that is not there', async () => {
    const file = join(dir, 'real.db');
    const plain = createClient({ url: `file:${file}` });
    await plain.execute('PRAGMA journal_mode=WAL');
    const client = withTimedWriteLock(plain, file, 1000);
    try {
      await client.batch([{ sql: 'CREATE TABLE kv (k TEXT PRIMARY KEY)', args: [] }, { sql: 'INSERT INTO kv (k) VALUES (?)', args: ['a'] }], 'write');
      expect(existsSync(`${file}-wal`)).toBe(true);
      await expect(syncWal(`${file}-wal`)).resolves.toBeUndefined();
      await expect(syncWal(join(dir, 'none.db-wal'))).rejects.toThrow(/ENOENT/);
    } finally {
      client.close();
    }
    const reopened = new Database(file);
    expect(reopened.prepare('SELECT k FROM kv').all()).toEqual([{ k: 'a' }]);
    reopened.close();
  });
});
