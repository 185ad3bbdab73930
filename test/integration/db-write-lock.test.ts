import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'libsql';
import { sql } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { openDatabase } from '../../control-plane/db/open.js';
import { createWriteQueue } from '../../control-plane/db/write-queue.js';

/**
 * Another process's write lock on the embedded database (control-plane/db/writer.ts), on a real
 * libSQL file: a second connection (what another control plane on the file is to SQLite) holds
 * `BEGIN IMMEDIATE` while this one writes through the write queue.
 */
describe('a write waiting for another connection to the file', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-write-lock-'));
  const log = createLogger('control-plane', { level: 'silent' });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function open(file: string, busyTimeoutMs?: number) {
    const url = `file:${join(dir, file)}`;
    const { client, db } = await openDatabase(url, { busyTimeoutMs });
    await client.execute('CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)');
    const other = new Database(join(dir, file));
    const { write } = createWriteQueue(db, log);
    const put = (k: string, v: number) => write((tx) => tx.run(sql`INSERT INTO kv (k, v) VALUES (${k}, ${v})`));
    const rows = async () => (await client.execute('SELECT k FROM kv ORDER BY k')).rows.map((r) => String(r.k));
    return { client, other, put, rows, close: () => (other.close(), client.close()) };
  }

  it('waits on timers, the event loop serving meanwhile, and commits once the other commits', async () => {
    const h = await open('wait.db');
    try {
      h.other.exec('BEGIN IMMEDIATE');
      h.other.prepare('INSERT INTO kv (k, v) VALUES (?, ?)').run('theirs', 1);
      let ticks = 0;
      let released = false;
      // The other side lets go only after this process's timers ran while the write was waiting:
      // a wait inside the driver would stop them, and the write would fail after the busy timeout.
      const ticker = setInterval(() => {
        if (++ticks === 3) {
          h.other.exec('COMMIT');
          released = true;
        }
      }, 20);
      try {
        await h.put('ours', 2);
      } finally {
        clearInterval(ticker);
      }
      expect(released).toBe(true);
      expect(await h.rows()).toEqual(['ours', 'theirs']);
    } finally {
      h.close();
    }
  });

  it('fails busy after the busy timeout without spoiling the next write', async () => {
    const h = await open('busy.db', 300);
    try {
      h.other.exec('BEGIN IMMEDIATE');
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 20);
      let err: { code?: string; message?: string } | undefined;
      try {
        await h.put('lost', 1);
      } catch (e) {
        err = e as typeof err;
      } finally {
        clearInterval(ticker);
      }
      expect(err?.code).toBe('SQLITE_BUSY');
      // The 300 ms went by on timers, not blocked inside the driver.
      expect(ticks).toBeGreaterThan(0);
      h.other.exec('ROLLBACK');
      // libsql left a BEGIN that failed busy in progress, and that connection's next COMMIT failed.
      await h.put('next', 2);
      await h.put('after', 3);
      expect(await h.rows()).toEqual(['after', 'next']);
    } finally {
      h.close();
    }
  });

  it('commits a writeAlone (the lease) while the queued writes wait for a write turn that does not come', async () => {
    const { client, db } = await openDatabase(`file:${join(dir, 'alone.db')}`);
    try {
      await client.execute('CREATE TABLE seq (n INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL)');
      // Another worker keeps the turn (its event loop stalled): the queue's group never begins.
      const turn = () => new Promise<() => void>(() => undefined);
      const { write, writeAlone } = createWriteQueue(db, log, turn);
      const stuck = write((tx) => tx.run(sql`INSERT INTO seq (k) VALUES ('report')`));
      await new Promise((r) => setImmediate(r));
      await writeAlone((tx) => tx.run(sql`INSERT INTO seq (k) VALUES ('lease')`));
      expect((await client.execute('SELECT k FROM seq ORDER BY n')).rows.map((r) => String(r.k))).toEqual(['lease']);
      void stuck;
    } finally {
      client.close();
    }
  });

  it('waits out its own process\'s long write (the lease holder\'s wave) instead of failing busy behind it', async () => {
    const busyTimeoutMs = 200;
    const { client, db } = await openDatabase(`file:${join(dir, 'own.db')}`, { busyTimeoutMs });
    try {
      await client.execute('CREATE TABLE seq (n INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL)');
      const { write, writeAlone } = createWriteQueue(db, log);
      let inside!: () => void;
      const began = new Promise<void>((r) => (inside = r));
      // The group holds SQLite's write lock for three busy timeouts (a 90,000-row assignment did 8 s against 5).
      const long = write(async (tx) => {
        await tx.run(sql`INSERT INTO seq (k) VALUES ('wave')`);
        inside();
        await new Promise((r) => setTimeout(r, 3 * busyTimeoutMs));
      });
      await began;
      const lease = writeAlone((tx) => tx.run(sql`INSERT INTO seq (k) VALUES ('lease')`));
      await Promise.all([long, lease]);
      expect((await client.execute('SELECT k FROM seq ORDER BY n')).rows.map((r) => String(r.k))).toEqual(['wave', 'lease']);
    } finally {
      client.close();
    }
  });
});
