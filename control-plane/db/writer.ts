import { LibsqlError, type Client, type InArgs, type InStatement, type ResultSet, type Transaction, type TransactionMode } from '@libsql/client';
import { Sqlite3Transaction } from '@libsql/client/sqlite3';
import Database from 'libsql';
import { statSync } from 'node:fs';
import { open as openFile, type FileHandle } from 'node:fs/promises';

/**
 * Write transactions on an embedded `file:` database that wait for another process's write lock
 * on timers instead of inside the driver (issue 17). @libsql/client begins a write transaction
 * with a prepared `BEGIN IMMEDIATE` on a pooled connection whose busy handler sleeps in the
 * calling thread: while another process (another control plane on the same file, a backup, the
 * seeding of a bench) holds the lock, this process's event loop stops, up to the busy timeout.
 * Worse, a BEGIN that fails busy is left un-reset ("in progress") on that connection, and the
 * next transaction it serves fails at COMMIT ("SQL statements in progress").
 *
 * Here a write transaction gets a connection of its own kind: no busy handler while it asks for
 * the lock, `BEGIN IMMEDIATE` run through exec() (which finalizes its statement whatever
 * happens), and on SQLITE_BUSY another try after a timer (1 ms doubling to 20 ms) until the busy
 * timeout; the event loop serves requests meanwhile. Once it holds the lock, the busy timeout is
 * set again for the statements inside (nothing else should make them wait). A connection whose
 * statement failed busy is closed rather than reused. Reads and every other call go to the client.
 *
 * The WAL's fsync of a commit is off the event loop too (issue 17). With SQLite's synchronous=FULL
 * the COMMIT itself waits for it (0.3-5 ms on this disk, the more the busier the machine) with
 * nothing else moving in the process: with `--workers 2` each worker's loop stood still for its own
 * and the write turn was held across it. A writer connection on a WAL file runs synchronous=NORMAL
 * instead (the COMMIT writes the WAL without syncing it; a checkpoint still syncs it first), and its
 * commit resolves only once the WAL file is synced on libuv's thread pool (`walSync`): the answer and
 * every afterCommit event (change-feed wakes, the relay to other workers) wait for it, an
 * acknowledged write is on disk as before, and since WAL recovery keeps a prefix of the commits,
 * nothing after a lost one survives either. What changes: with FULL the WAL is synced before the
 * wal-index makes a commit visible, here other connections (another process, a tailing change feed)
 * see it one datasync earlier. Only a power cut or a kernel crash inside that window loses such a
 * write (a kill -9 does not: the page cache outlives the process), and then a desired-state change a
 * reader saw can be gone and its sequence handed out again to another document, which a device that
 * saw the first would take as already applied. A file not in WAL mode keeps FULL.
 */

const MAX_RETRY_MS = 20;
/** Prepared statements kept per writer connection: the write paths' statements are a few dozen texts. */
const MAX_STATEMENTS = 256;

const NOT_A_READER = new TypeError('The raw() method is only for statements that return data');
const notReader = (): never => {
  throw NOT_A_READER;
};

/**
 * Keeps `conn`'s prepared statements by SQL text (least recently used out first). @libsql/client
 * prepares every statement it runs afresh, and on the embedded driver compiling one costs several
 * times running it (an enrollment's write is seven statements and two savepoint commands, a
 * report's as many): the writer runs the same few texts over and over. Safe to share one statement
 * across calls: the client runs each to its end (all/run) before the next starts, both reset it,
 * and SQLite compiles a kept statement again by itself after a schema change.
 */
export function keepStatements(conn: Database.Database, max = MAX_STATEMENTS): void {
  const prepare = conn.prepare.bind(conn);
  const kept = new Map<string, Database.Statement>();
  conn.prepare = ((sql: string) => {
    let stmt = kept.get(sql);
    if (stmt) {
      kept.delete(sql);
    } else {
      stmt = prepare(sql);
      // The client learns that a statement returns no rows by calling raw(true), which the driver
      // answers with a new native error (its message, code and stack built each time): every UPDATE,
      // INSERT and savepoint. A kept one that returns no rows throws one error made once instead.
      if (!stmt.reader) stmt.raw = notReader;
      if (kept.size >= max) kept.delete(kept.keys().next().value as string);
    }
    kept.set(sql, stmt);
    return stmt;
  }) as typeof conn.prepare;
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

function asLibsqlError(err: unknown): unknown {
  const e = err as { message?: string; code?: string; rawCode?: number };
  return typeof e?.code === 'string' && !(err instanceof LibsqlError) ? new LibsqlError(e.message ?? String(err), e.code, undefined, e.rawCode, err instanceof Error ? err : undefined) : err;
}

/** Takes SQLite's write lock on `conn`, retrying on timers while another connection holds it. */
export async function beginImmediate(conn: Database.Database, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let wait = 1; ; wait = Math.min(wait * 2, MAX_RETRY_MS)) {
    try {
      conn.exec('BEGIN IMMEDIATE');
      return;
    } catch (err) {
      if (!isBusy(err)) throw asLibsqlError(err);
      const left = deadline - Date.now();
      if (left <= 0) throw new LibsqlError(`database is locked: another connection held the write lock for the whole busy timeout (${timeoutMs} ms)`, 'SQLITE_BUSY');
      await new Promise((resolve) => setTimeout(resolve, Math.min(wait, left)));
    }
  }
}

/** The client's transaction on our connection; notes a statement that failed busy (that connection is not reused). */
class WriterTransaction extends Sqlite3Transaction {
  constructor(
    private readonly conn: Database.Database,
    release: (db: Database.Database) => void,
    private readonly poisoned: Set<Database.Database>,
    private readonly synced: () => Promise<void>,
  ) {
    super(conn, 'number', release);
  }

  private note<T>(p: Promise<T>): Promise<T> {
    return p.catch((err: unknown) => {
      if (isBusy(err)) this.poisoned.add(this.conn);
      throw err;
    });
  }

  override execute(stmtOrSql: InStatement | string, args?: InArgs): Promise<ResultSet> {
    return this.note(typeof stmtOrSql === 'string' ? super.execute(stmtOrSql, args) : super.execute(stmtOrSql));
  }

  override batch(stmts: Array<InStatement | [string, InArgs?]>): Promise<ResultSet[]> {
    return this.note(super.batch(stmts));
  }

  override async commit(): Promise<void> {
    await this.note(super.commit());
    await this.synced();
  }
}

/** The WAL file's data to disk (fdatasync, as SQLite's own sync), off the event loop. */
export interface WalSync {
  /** Resolves once synced, to the inode synced (what a test checks). */
  sync(): Promise<number>;
  close(): void;
}

/**
 * Syncs the WAL file at `path` through one descriptor, opened at the first sync and kept: a sync is
 * then one trip to libuv's thread pool, not three (open, datasync, close), each of which waited for a
 * busy event loop. SQLite deletes the WAL only when the file's last connection closes, which the
 * client this serves prevents until close(); still, before each sync the path's inode is compared
 * with the descriptor's (a stat on the loop, a few µs) and a WAL made anew is opened again, so a
 * commit never resolves on the sync of a file no one writes any more.
 */
export function walSync(path: string): WalSync {
  /** Opened after the stat: the same file only if its inode is the one the stat saw (checked once). */
  const openChecked = async (p: string, ino: number): Promise<FileHandle> => {
    const handle = await openFile(p, 'r');
    if ((await handle.stat()).ino !== ino) {
      await handle.close();
      throw new Error(`WAL ${p} was replaced while it was opened for a sync`);
    }
    return handle;
  };
  let kept: { handle: Promise<FileHandle>; ino: number } | undefined;
  const drop = () => {
    void kept?.handle.then((h) => h.close()).catch(() => undefined);
    kept = undefined;
  };
  return {
    async sync() {
      const ino = statSync(path).ino;
      if (kept?.ino !== ino) {
        drop();
        kept = { handle: openChecked(path, ino), ino };
      }
      const mine = kept;
      try {
        await (await mine.handle).datasync();
        return ino;
      } catch (err) {
        // Opened afresh next time.
        if (kept === mine) drop();
        throw err;
      }
    },
    close: drop,
  };
}

/**
 * `client` with its write transactions (and write batches) on writer connections to `file`.
 * `syncer` makes a commit durable on a WAL file (walSync; a test may watch it).
 */
export function withTimedWriteLock(client: Client, file: string, busyTimeoutMs: number, syncer: (walPath: string) => WalSync = walSync): Client {
  const idle: Database.Database[] = [];
  const poisoned = new Set<Database.Database>();
  let closed = false;
  /** Whether the file is in WAL mode, learnt by the first writer connection (open.ts sets it before any write). */
  let wal: boolean | undefined;
  const walFile = syncer(`${file}-wal`);
  const synced = async (): Promise<void> => {
    if (wal) await walFile.sync();
  };

  const open = (): Database.Database => {
    const conn = new Database(file, { timeout: 0 } as ConstructorParameters<typeof Database>[1]);
    // Per connection, not per file: every writer enforces the schema's foreign keys.
    conn.exec('PRAGMA foreign_keys=ON');
    wal ??= String((conn.prepare('PRAGMA journal_mode').get() as { journal_mode?: unknown } | undefined)?.journal_mode).toLowerCase() === 'wal';
    // The commit's sync is synced() after the COMMIT, off the event loop (above).
    if (wal) conn.exec('PRAGMA synchronous=NORMAL');
    keepStatements(conn);
    return conn;
  };
  const drop = (conn: Database.Database) => {
    poisoned.delete(conn);
    try {
      if (conn.open) conn.close();
    } catch {
      // closing is all that was left to do with it
    }
  };
  const release = (conn: Database.Database) => {
    if (closed || !conn.open || poisoned.has(conn)) return drop(conn);
    try {
      if (conn.inTransaction) conn.exec('ROLLBACK');
      conn.exec('PRAGMA busy_timeout = 0');
      idle.push(conn);
    } catch {
      drop(conn);
    }
  };

  async function transaction(mode: TransactionMode = 'write'): Promise<Transaction> {
    if (mode !== 'write') return client.transaction(mode);
    if (closed) throw new LibsqlError('The client is closed', 'CLIENT_CLOSED');
    const conn = idle.pop() ?? open();
    try {
      await beginImmediate(conn, busyTimeoutMs);
      conn.exec(`PRAGMA busy_timeout = ${busyTimeoutMs}`);
    } catch (err) {
      release(conn);
      throw err;
    }
    return new WriterTransaction(conn, release, poisoned, synced);
  }

  async function batch(stmts: Array<InStatement | [string, InArgs?]>, mode: TransactionMode = 'deferred'): Promise<ResultSet[]> {
    if (mode !== 'write') return client.batch(stmts, mode);
    const tx = await transaction('write');
    try {
      const out = await tx.batch(stmts.map((st) => (Array.isArray(st) ? { sql: st[0], args: st[1] ?? [] } : st)));
      await tx.commit();
      return out;
    } finally {
      tx.close();
    }
  }

  function close(): void {
    closed = true;
    for (const conn of idle.splice(0)) drop(conn);
    walFile.close();
    client.close();
  }

  return new Proxy(client, {
    get(target, prop) {
      if (prop === 'transaction') return transaction;
      if (prop === 'batch') return batch;
      if (prop === 'close') return close;
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
