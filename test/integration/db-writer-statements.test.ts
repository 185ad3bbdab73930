import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'libsql';
import { afterAll, describe, expect, it } from 'vitest';
import { keepStatements } from '../../control-plane/db/writer.js';

/** db/writer.ts keeps each writer connection's prepared statements: on a real libSQL file. */
describe('writer connection statements kept by SQL text', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-writer-stmts-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('hands back the kept statement, evicts the least recently used past its bound, and a kept statement survives a failure and a schema change', () => {
    const conn = new Database(join(dir, 'k.db'));
    try {
      keepStatements(conn, 4);
      conn.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
      const insert = 'INSERT INTO t (id, v) VALUES (?, ?)';
      const first = conn.prepare(insert);
      expect(conn.prepare(insert)).toBe(first);
      first.run([1, 'a']);
      // @libsql/client tells a statement that returns no rows by raw(true) throwing; a reader's raw works.
      expect(() => conn.prepare(insert).raw(true)).toThrow(/only for statements that return data/);
      expect(conn.prepare('INSERT INTO t (id, v) VALUES (?, ?) RETURNING id').raw(true).all([9, 'r'])).toEqual([[9]]);
      conn.prepare('DELETE FROM t WHERE id = 9').run();
      // A constraint failure leaves the kept statement usable for the next call.
      expect(() => conn.prepare(insert).run([1, 'again'])).toThrow(/UNIQUE/);
      conn.prepare(insert).run([2, 'b']);
      const select = 'SELECT * FROM t ORDER BY id';
      expect(conn.prepare(select).raw(true).all()).toEqual([[1, 'a'], [2, 'b']]);
      // Compiled again by SQLite after the schema changed: the new column shows.
      conn.exec("ALTER TABLE t ADD COLUMN w TEXT NOT NULL DEFAULT 'x'");
      expect(conn.prepare(select).raw(true).all()).toEqual([[1, 'a', 'x'], [2, 'b', 'x']]);
      // Bound 4, least recently used first: RETURNING, DELETE, insert, select; three new texts evict up to insert.
      for (const f of ['count', 'max', 'min']) conn.prepare(`SELECT ${f}(id) FROM t`);
      expect(conn.prepare(insert)).not.toBe(first);
    } finally {
      conn.close();
    }
  });
});
