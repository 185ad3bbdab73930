import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import Database from 'libsql';
import { afterAll, describe, expect, it } from 'vitest';
import { FALLBACK_FRAMES, startCheckpointer, type CheckpointResult } from '../../control-plane/db/checkpointer.js';
import { openDatabase } from '../../control-plane/db/open.js';
import { walSync, withTimedWriteLock } from '../../control-plane/db/writer.js';

/**
 * WAL checkpoints on a thread (control-plane/db/checkpointer.ts), on real libSQL files: the writer
 * connections no longer checkpoint at SQLite's 1,000 frames inside their COMMIT, the thread copies
 * the committed frames into the database file after commits, and what was committed is in that
 * file alone afterwards.
 */
describe('the WAL checkpointer', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-checkpointer-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function until<T>(what: string, f: () => T | undefined): Promise<T> {
    for (let i = 0; i < 500; i++) {
      const v = f();
      if (v !== undefined) return v;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  it('writer connections leave checkpoints to the thread, which copies every committed frame into the database file', async () => {
    const file = join(dir, 'cp.db');
    const plain = createClient({ url: `file:${file}` });
    await plain.execute('PRAGMA journal_mode=WAL');
    await plain.execute('CREATE TABLE blob (id INTEGER PRIMARY KEY, v BLOB)');
    const results: CheckpointResult[] = [];
    const client = withTimedWriteLock(plain, file, 1000, walSync, startCheckpointer(file, { gapMs: 50, onResult: (r) => results.push(r) }));
    try {
      const tx = await client.transaction('write');
      expect(Number((await tx.execute('PRAGMA wal_autocheckpoint')).rows[0][0])).toBe(FALLBACK_FRAMES);
      // About 1,500 pages of 4 KiB in one commit: past SQLite's 1,000-frame auto-checkpoint.
      for (let i = 0; i < 1500; i++) await tx.execute({ sql: 'INSERT INTO blob (v) VALUES (randomblob(4000))' });
      await tx.commit();
      // The commit itself did not checkpoint: the WAL still holds every frame right after it, or the thread already took them.
      const done = await until('a checkpoint of the whole WAL', () => results.find((r) => r.log >= 1500 && r.checkpointed === r.log));
      expect(done.error).toBeUndefined();
      expect(done.busy).toBe(0);
      // The database file alone (no WAL beside it) holds the rows.
      const copy = join(dir, 'copy.db');
      copyFileSync(file, copy);
      const alone = new Database(copy);
      expect(Number((alone.prepare('SELECT count(*) AS n FROM blob').get() as { n: number }).n)).toBe(1500);
      alone.close();
    } finally {
      client.close();
    }
  });

  it('asked after every commit, checkpoints at most once per gap, the last commit included', async () => {
    const file = join(dir, 'gap.db');
    const plain = createClient({ url: `file:${file}` });
    await plain.execute('PRAGMA journal_mode=WAL');
    await plain.execute('CREATE TABLE kv (k INTEGER PRIMARY KEY)');
    const results: (CheckpointResult & { at: number })[] = [];
    const gapMs = 300;
    const client = withTimedWriteLock(plain, file, 1000, walSync, startCheckpointer(file, { gapMs, onResult: (r) => results.push({ ...r, at: performance.now() }) }));
    try {
      const t0 = performance.now();
      for (let i = 0; i < 40; i++) {
        const tx = await client.transaction('write');
        await tx.execute({ sql: 'INSERT INTO kv (k) VALUES (?)', args: [i] });
        await tx.commit();
      }
      const lastCommit = performance.now();
      const after = await until('a checkpoint after the last commit', () => results.find((r) => r.at > lastCommit));
      expect(after.error).toBeUndefined();
      expect(after.checkpointed).toBe(after.log);
      expect(results.length).toBeLessThanOrEqual(Math.ceil((after.at - t0) / gapMs) + 1);
      const copy = join(dir, 'gap-copy.db');
      copyFileSync(file, copy);
      const alone = new Database(copy);
      expect(Number((alone.prepare('SELECT count(*) AS n FROM kv').get() as { n: number }).n)).toBe(40);
      alone.close();
    } finally {
      client.close();
    }
  });

  it('openDatabase checkpoints a file database this way', async () => {
    const file = join(dir, 'opened.db');
    const { client } = await openDatabase(`file:${file}`);
    try {
      const tx = await client.transaction('write');
      expect(Number((await tx.execute('PRAGMA wal_autocheckpoint')).rows[0][0])).toBe(FALLBACK_FRAMES);
      await tx.rollback();
    } finally {
      client.close();
    }
  });
});
