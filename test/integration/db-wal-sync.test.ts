import { existsSync, mkdtempSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { open as openFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import Database from 'libsql';
import { afterAll, describe, expect, it } from 'vitest';
import { walSync, withTimedWriteLock } from '../../control-plane/db/writer.js';

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
    const syncer = (path: string) => ({ sync: () => new Promise<number>((resolve) => syncs.push({ path, done: () => resolve(0) })), close: () => undefined });
    const plain = createClient({ url: `file:${file}` });
    await plain.execute(`PRAGMA journal_mode=${journal}`);
    await plain.execute('CREATE TABLE kv (k TEXT PRIMARY KEY)');
    return { file, syncs, client: withTimedWriteLock(plain, file, 1000, syncer) };
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

  it('syncs a WAL made anew under its kept descriptor, not the file it first opened', async () => {
    const path = join(dir, 'renewed.db-wal');
    await writeFile(path, 'first');
    const wal = walSync(path);
    try {
      const first = await wal.sync();
      expect(first).toBe(statSync(path).ino);
      // Deleted and made again (what SQLite does when a file's last connection closes and one opens);
      // the first file kept open elsewhere so that its inode is not reused for the second.
      const held = await openFile(path, 'r');
      try {
        unlinkSync(path);
        await writeFile(path, 'second');
        const second = statSync(path).ino;
        expect(second).not.toBe(first);
        await expect(wal.sync()).resolves.toBe(second);
      } finally {
        await held.close();
      }
    } finally {
      wal.close();
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
      const wal = walSync(`${file}-wal`);
      const ino = statSync(`${file}-wal`).ino;
      await expect(wal.sync()).resolves.toBe(ino);
      await expect(wal.sync()).resolves.toBe(ino);
      wal.close();
      const none = walSync(join(dir, 'none.db-wal'));
      await expect(none.sync()).rejects.toThrow(/ENOENT/);
      // A failed open is not kept: the file made meanwhile is synced on the next try.
      await writeFile(join(dir, 'none.db-wal'), 'x');
      await expect(none.sync()).resolves.toBe(statSync(join(dir, 'none.db-wal')).ino);
      none.close();
    } finally {
      client.close();
    }
    const reopened = new Database(file);
    expect(reopened.prepare('SELECT k FROM kv').all()).toEqual([{ k: 'a' }]);
    reopened.close();
  });
});
