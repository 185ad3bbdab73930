import { createClient, type Client } from '@libsql/client';
import { drizzle, type LibSQLDatabase } from 'drizzle-orm/libsql';
import type { Logger } from '../../common/log.js';
import { migrations, type Migration } from './migrations/index.js';
import { embeddedFileOf } from './point-reads.js';
import { withTimedWriteLock } from './writer.js';

/** How long a write waits for another process's write lock before it fails (SQLITE_BUSY). */
export const BUSY_TIMEOUT_MS = 5000;

export type Db = LibSQLDatabase;

/**
 * Opens the database. An embedded `file:` database gets WAL (readers never wait for the writer)
 * and a busy timeout; a write transaction's commit resolves once the WAL is synced (writer.ts), so
 * a commit is on disk before the request that caused it is answered: a kill -9 loses no
 * acknowledged write (a power cut: what writer.ts says). SQLite's auto-checkpoint stays inside the
 * COMMIT that crosses 1,000 frames: on a thread of its own it delayed the WAL syncs of the commits
 * beside it more than it saved the event loop (SCALING.md, 2026-11-30). Any other URL (libsql://,
 * http(s)://) is a server that manages its own durability.
 */
export async function openDatabase(url: string, opts: { authToken?: string; busyTimeoutMs?: number } = {}): Promise<{ client: Client; db: Db }> {
  const isFile = url.startsWith('file:');
  const busyTimeoutMs = opts.busyTimeoutMs ?? BUSY_TIMEOUT_MS;
  const opened = createClient({ url, authToken: opts.authToken, ...(isFile ? { timeout: busyTimeoutMs } : {}) });
  // Write transactions wait for another process's lock on timers, not inside the driver (writer.ts).
  const file = embeddedFileOf(url);
  const client = file ? withTimedWriteLock(opened, file, busyTimeoutMs) : opened;
  if (isFile) {
    // journal_mode is a property of the file, so one connection setting it covers the pool.
    await client.execute('PRAGMA journal_mode=WAL');
    await client.execute('PRAGMA foreign_keys=ON');
  }
  return { client, db: drizzle(client) };
}

/** Applies pending migrations in order, each in one write transaction with its bookkeeping row. */
export async function migrate(client: Client, log: Logger, list: Migration[] = migrations): Promise<string[]> {
  await client.execute('CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)');
  const applied: string[] = [];
  for (const m of list) {
    const tx = await client.transaction('write');
    try {
      // Checked inside the write transaction: two processes starting together apply it once.
      const done = await tx.execute({ sql: 'SELECT 1 FROM schema_migrations WHERE id = ?', args: [m.id] });
      if (done.rows.length > 0) {
        await tx.rollback();
        continue;
      }
      await tx.executeMultiple(m.sql);
      await tx.execute({ sql: 'INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)', args: [m.id, Date.now()] });
      await tx.commit();
      applied.push(m.id);
      log.info({ migration: m.id }, 'migration applied');
    } catch (err) {
      await tx.rollback().catch(() => undefined);
      throw new Error(`migration ${m.id} failed: ${(err as Error).message}`);
    } finally {
      tx.close();
    }
  }
  return applied;
}
