import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlPlaneContext } from '../../control-plane/context.js';
import { createLogger } from '../../common/log.js';
import { openDatabase } from '../../control-plane/db/open.js';
import { createWriteQueue } from '../../control-plane/db/write-queue.js';
import { fileContext } from './file-context.js';

/** ctx.write on a real libSQL file: concurrent writes share commits but fail alone. */
describe('control plane writes (group commit)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-cp-writes-'));
  let ctx: ControlPlaneContext;
  let close: () => void;

  beforeAll(async () => {
    ({ ctx, close } = await fileContext(dir, 'w.db'));
  });

  afterAll(() => {
    close?.();
    rmSync(dir, { recursive: true, force: true });
  });

  const insert = (serial: string) => sql`INSERT INTO devices (id, serial, public_key, labels, status, created_at, token_epoch) VALUES (${'dev_' + serial}, ${serial}, 'k', '{}', 'registered', 0, 0)`;
  const serials = async () => (await ctx.db.all<{ serial: string }>(sql`SELECT serial FROM devices ORDER BY serial`)).map((r) => r.serial);

  it('commits every write that succeeded, rolls back only the one that failed, and runs only committed hooks', async () => {
    const hooks: string[] = [];
    const writes = Array.from({ length: 20 }, (_, i) =>
      ctx.write(async (tx) => {
        const serial = `w-${String(i).padStart(2, '0')}`;
        await tx.run(insert(serial));
        ctx.afterCommit(tx, () => hooks.push(serial));
        if (i === 7) throw new Error('refused after writing');
        return serial;
      }),
    );
    const settled = await Promise.allSettled(writes);
    expect(settled.filter((s) => s.status === 'rejected').map((s) => (s as PromiseRejectedResult).reason.message)).toEqual(['refused after writing']);
    const expected = Array.from({ length: 20 }, (_, i) => `w-${String(i).padStart(2, '0')}`).filter((s) => s !== 'w-07');
    expect(await serials()).toEqual(expected);
    expect(hooks.sort()).toEqual(expected);
  });

  it('fails a write that breaks a constraint without touching its neighbours', async () => {
    const [a, dup, b] = await Promise.allSettled([ctx.write((tx) => tx.run(insert('x-a'))), ctx.write((tx) => tx.run(insert('w-00'))), ctx.write((tx) => tx.run(insert('x-b')))]);
    expect([a.status, dup.status, b.status]).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((await serials()).filter((s) => s.startsWith('x-'))).toEqual(['x-a', 'x-b']);
    // A lone write that fails rolls back too.
    await expect(ctx.write(async (tx) => { await tx.run(insert('y-1')); throw new Error('no'); })).rejects.toThrow('no');
    expect(await serials()).not.toContain('y-1');
  });

  it('with turns to take (--workers N), commits every write queued while waiting for the turn in that one commit', async () => {
    const { client, db } = await openDatabase(`file:${join(dir, 'turns.db')}`);
    try {
      await client.execute('CREATE TABLE t (n INTEGER)');
      const asked: (() => void)[] = [];
      const turn = () => new Promise<() => void>((grant) => asked.push(() => grant(() => undefined)));
      const q = createWriteQueue(db, createLogger('control-plane', { level: 'silent' }), turn);
      const first = q.write((tx) => tx.run(sql`INSERT INTO t VALUES (0)`));
      while (asked.length === 0) await new Promise((r) => setImmediate(r));
      // The other worker holds the turn; these arrive meanwhile.
      const rest = Array.from({ length: 5 }, (_, i) => q.write((tx) => tx.run(sql`INSERT INTO t VALUES (${i + 1})`)));
      asked[0]();
      await Promise.all([first, ...rest]);
      expect(asked).toHaveLength(1);
      expect((await client.execute('SELECT count(*) AS n FROM t')).rows[0].n).toBe(6);
    } finally {
      client.close();
    }
  });

  it('with turns to take, begins no further write of a group once it has held the turn groupTurnMs: the rest go first at its next turn', async () => {
    const { client, db } = await openDatabase(`file:${join(dir, 'turn-budget.db')}`);
    try {
      await client.execute('CREATE TABLE t (n INTEGER)');
      // The writes move the clock: each "takes" 100 ms.
      let clock = 0;
      const grantedAt: number[] = [];
      const turn = () => {
        grantedAt.push(clock);
        return Promise.resolve(() => undefined);
      };
      const q = createWriteQueue(db, createLogger('control-plane', { level: 'silent' }), turn, { groupTurnMs: 250, now: () => clock });
      const writes = Array.from({ length: 5 }, (_, i) =>
        q.write(async (tx) => {
          clock += 100;
          await tx.run(sql`INSERT INTO t VALUES (${i})`);
          return i;
        }),
      );
      expect(await Promise.all(writes)).toEqual([0, 1, 2, 3, 4]);
      // Three writes fill the first turn (0 → 300 ms); the other two take the next one.
      expect(grantedAt).toEqual([0, 300]);
      expect((await client.execute('SELECT n FROM t ORDER BY rowid')).rows.map((r) => r.n)).toEqual([0, 1, 2, 3, 4]);
    } finally {
      client.close();
    }
  });

  it('flushes device sightings in one batched write, never moving a sighting back, dropping those of devices gone', async () => {
    ctx.seen.touch('dev_w-01', 5_000);
    ctx.seen.touch('dev_w-02', 7_000);
    ctx.seen.touch('dev_w-01', 4_000);
    // Removed since it was seen: the foreign key would fail the whole write if it were not dropped.
    ctx.seen.touch('dev_gone', 5_000);
    expect(ctx.seen.merged('dev_w-01', null)).toBe(5_000);
    expect(await ctx.seen.flush(ctx.write)).toBe(3);
    ctx.seen.touch('dev_w-02', 6_000);
    ctx.seen.touch('dev_w-01', 8_000);
    await ctx.seen.flush(ctx.write);
    const rows = await ctx.db.all<{ id: string; last_seen_at: number | null }>(
      sql`SELECT d.id, s.last_seen_at FROM devices d LEFT JOIN device_sightings s ON s.device_id = d.id WHERE d.id IN ('dev_w-01', 'dev_w-02', 'dev_w-03') ORDER BY d.id`,
    );
    expect(rows).toEqual([
      { id: 'dev_w-01', last_seen_at: 8_000 },
      { id: 'dev_w-02', last_seen_at: 7_000 },
      { id: 'dev_w-03', last_seen_at: null },
    ]);
    expect(await ctx.db.all(sql`SELECT device_id FROM device_sightings WHERE device_id = 'dev_gone'`)).toEqual([]);
    expect(ctx.seen.size).toBe(0);
  });
});
