import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceReport } from '../../protocol/device.js';
import type { ControlPlaneContext } from '../../control-plane/context.js';
import { ReportWriter } from '../../control-plane/device-api/report-writer.js';
import { fileContext } from './file-context.js';

/**
 * Reports written in batches (report-writer.ts) on a real libSQL file decide exactly as one at a
 * time would: the same acceptances in arrival order, the same twin row and bounded history, an
 * event per accepted report after its commit, and a bad report failing alone.
 */
describe('device reports in batches', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-report-batch-'));
  const LIMIT = 4;
  let ctx: ControlPlaneContext;
  let close: () => void;

  beforeAll(async () => {
    ({ ctx, close } = await fileContext(dir, 'r.db'));
    ctx.config.reportHistoryLimit = LIMIT;
    for (const id of ['dev_a', 'dev_b', 'dev_c']) {
      await ctx.db.run(sql`INSERT INTO devices (id, serial, public_key, labels, status, created_at, token_epoch) VALUES (${id}, ${id.slice(4)}, 'k', '{}', 'enrolled', 0, 0)`);
    }
  });

  afterAll(() => {
    close?.();
    rmSync(dir, { recursive: true, force: true });
  });

  const report = (sequence: number, phase: DeviceReport['phase']): DeviceReport => ({ sequence, desiredSequence: 1, running: 'app@1', phase, bytes: { done: sequence, total: 100 }, services: {}, at: new Date(sequence * 1000).toISOString() });
  const history = async (id: string) => (await ctx.db.all<{ sequence: number }>(sql`SELECT sequence FROM report_history WHERE device_id = ${id} ORDER BY id`)).map((r) => Number(r.sequence));

  it('accepts in arrival order, keeps the newest twin row and the bounded history, and announces each accepted report once', async () => {
    const writer = new ReportWriter(ctx);
    const events: { deviceId: string; sequence: number; previousPhase: string | null }[] = [];
    const off = ctx.events.on('report', (e) => events.push({ deviceId: e.deviceId, sequence: e.report.sequence, previousPhase: e.previousPhase }));
    // Submitted together: they share batches. dev_a's 5 and 3 come after its 6, so they are stale.
    const sent: [string, number, DeviceReport['phase']][] = [
      ['dev_a', 1, 'downloading'],
      ['dev_b', 10, 'downloading'],
      ['dev_a', 2, 'downloading'],
      ['dev_a', 6, 'running'],
      ['dev_a', 5, 'failed'],
      ['dev_b', 11, 'running'],
      ['dev_a', 3, 'failed'],
      ...Array.from({ length: 40 }, (_, i): [string, number, DeviceReport['phase']] => ['dev_c', 100 + i, i % 2 ? 'running' : 'downloading']),
    ];
    try {
      const outcomes = await Promise.all(sent.map(([id, seq, phase]) => writer.submit(id, report(seq, phase), 1000 + seq)));
      expect(outcomes.map((o) => o.accepted)).toEqual(sent.map(([id, seq]) => !(id === 'dev_a' && (seq === 5 || seq === 3))));
      expect(outcomes[4]).toEqual({ accepted: false, previousPhase: 'running' });
      expect(outcomes[3]).toEqual({ accepted: true, previousPhase: 'downloading' });
    } finally {
      off();
    }
    expect(events.filter((e) => e.deviceId === 'dev_a')).toEqual([
      { deviceId: 'dev_a', sequence: 1, previousPhase: null },
      { deviceId: 'dev_a', sequence: 2, previousPhase: 'downloading' },
      { deviceId: 'dev_a', sequence: 6, previousPhase: 'downloading' },
    ]);
    expect(events.filter((e) => e.deviceId === 'dev_c')).toHaveLength(40);
    const twin = await ctx.db.all<{ device_id: string; sequence: number; phase: string; bytes_done: number; received_at: number }>(sql`SELECT device_id, sequence, phase, bytes_done, received_at FROM reported ORDER BY device_id`);
    expect(twin.map((r) => [r.device_id, Number(r.sequence), r.phase, Number(r.bytes_done), Number(r.received_at)])).toEqual([
      ['dev_a', 6, 'running', 6, 1006],
      ['dev_b', 11, 'running', 11, 1011],
      ['dev_c', 139, 'running', 139, 1139],
    ]);
    expect(await history('dev_a')).toEqual([1, 2, 6]);
    expect(await history('dev_b')).toEqual([10, 11]);
    expect(await history('dev_c')).toEqual([136, 137, 138, 139]);
    // A later batch still sees the stored sequence.
    expect(await writer.submit('dev_b', report(11, 'failed'), 2000)).toEqual({ accepted: false, previousPhase: 'running' });
  });

  it('fails a report the database refuses without costing the others of its batch', async () => {
    const writer = new ReportWriter(ctx);
    const broken = { ...report(300, 'running'), phase: null } as unknown as DeviceReport;
    const settled = await Promise.allSettled([writer.submit('dev_a', report(200, 'running'), 1), writer.submit('dev_b', broken, 2), writer.submit('dev_c', report(400, 'running'), 3)]);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    // Refused on its own (its own statement, its parameters alone), after the batch it was in failed.
    expect(String((settled[1] as PromiseRejectedResult).reason)).toMatch(/INSERT INTO reported[\s\S]*params: dev_b,300,/);
    expect((await history('dev_a')).at(-1)).toBe(200);
    expect((await history('dev_b')).at(-1)).toBe(11);
    expect((await history('dev_c')).at(-1)).toBe(400);
  });
});
