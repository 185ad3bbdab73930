/**
 * The report write alone, in one process on a real libSQL file (issue 17): the same reports
 * written one write each, as the report route did before (the statements below are that route's),
 * and through ReportWriter's batches, alternating, 64 in flight. Prints writes/s and CPU µs per
 * report (process.cpuUsage: the machine's other load does not count, unlike wall time); then each
 * way at 1,000 reports/s offered on schedule for 4 s, latency from the scheduled time (p50, p99,
 * max). No HTTP, no Docker. Not part of `npm run bench`:
 *   node dist/test/bench/report-writes.js [reports per run, default 20000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import type { DeviceReport } from '../../protocol/device.js';
import type { ControlPlaneContext } from '../../control-plane/context.js';
import { ReportWriter, type ReportOutcome } from '../../control-plane/device-api/report-writer.js';
import { fileContext } from '../integration/file-context.js';

const DEVICES = 2000;
const IN_FLIGHT = 64;

/** One report, one write: the route's statements before batching (webhook outbox left out: no webhook here). */
function oneByOne(ctx: ControlPlaneContext) {
  return (deviceId: string, r: DeviceReport, now: number): Promise<ReportOutcome> =>
    ctx.write(async (tx) => {
      const prev = (await tx.all<{ sequence: number; phase: string }>(sql`SELECT sequence, phase, desired_sequence FROM reported WHERE device_id = ${deviceId}`))[0];
      if (prev && r.sequence <= prev.sequence) return { accepted: false, previousPhase: prev.phase as ReportOutcome['previousPhase'] };
      await tx.run(sql`INSERT INTO reported (device_id, sequence, desired_sequence, running, phase, bytes_done, bytes_total, bytes_full, bytes_delta, services, error, at, received_at)
        VALUES (${deviceId}, ${r.sequence}, ${r.desiredSequence}, ${r.running}, ${r.phase}, ${r.bytes.done}, ${r.bytes.total}, ${null}, ${null}, ${JSON.stringify(r.services)}, ${null}, ${r.at}, ${now})
        ON CONFLICT (device_id) DO UPDATE SET sequence = excluded.sequence, desired_sequence = excluded.desired_sequence, running = excluded.running, phase = excluded.phase,
          bytes_done = excluded.bytes_done, bytes_total = excluded.bytes_total, services = excluded.services, at = excluded.at, received_at = excluded.received_at`);
      await tx.run(sql`INSERT INTO report_history (device_id, sequence, desired_sequence, running, phase, error, report, received_at)
        VALUES (${deviceId}, ${r.sequence}, ${r.desiredSequence}, ${r.running}, ${r.phase}, ${null}, ${JSON.stringify(r)}, ${now})`);
      await tx.run(sql`DELETE FROM report_history WHERE device_id = ${deviceId} AND id <= (SELECT id FROM report_history WHERE device_id = ${deviceId} ORDER BY id DESC LIMIT 1 OFFSET ${ctx.config.reportHistoryLimit})`);
      ctx.afterCommit(tx, () => ctx.events.emit('report', { deviceId, report: r, previousPhase: (prev?.phase ?? null) as ReportOutcome['previousPhase'] }));
      return { accepted: true, previousPhase: (prev?.phase ?? null) as ReportOutcome['previousPhase'] };
    });
}

const total = Number(process.argv[2] ?? 20_000);
const dir = mkdtempSync(join(tmpdir(), 'berth-report-writes-'));
const { ctx, close } = await fileContext(dir, 'r.db');
try {
  for (let i = 0; i < DEVICES; i += 500) {
    const rows = Array.from({ length: Math.min(500, DEVICES - i) }, (_, j) => sql`(${`dev_${i + j}`}, ${`s${i + j}`}, 'k', '{}', 'enrolled', 0, 0)`);
    await ctx.db.run(sql`INSERT INTO devices (id, serial, public_key, labels, status, created_at, token_epoch) VALUES ${sql.join(rows, sql`, `)}`);
  }
  const seq = new Map<string, number>();
  const report = (id: string): DeviceReport => {
    const s = (seq.get(id) ?? 0) + 1;
    seq.set(id, s);
    return { sequence: s, desiredSequence: 3, running: 'app@1', phase: 'running', bytes: { done: 0, total: 0 }, services: { app: { image: 'bench', status: 'running', health: 'none', restarts: 0 } }, at: new Date().toISOString() };
  };
  const writer = new ReportWriter(ctx);
  const ways: [string, (id: string, r: DeviceReport, now: number) => Promise<ReportOutcome>][] = [
    ['one write per report', oneByOne(ctx)],
    ['batched (ReportWriter)', (id, r, now) => writer.submit(id, r, now)],
  ];
  for (let run = 0; run < 3; run++) {
    for (const [name, submit] of ways) {
      let next = 0;
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          while (next < total) {
            const id = `dev_${next++ % DEVICES}`;
            await submit(id, report(id), Date.now());
          }
        }),
      );
      const c = process.cpuUsage(c0);
      console.log(`${name}: ${(total / ((performance.now() - t0) / 1000)).toFixed(0)} reports/s, ${((c.user + c.system) / total).toFixed(0)} µs CPU each (${IN_FLIGHT} in flight)`);
    }
  }
  for (let run = 0; run < 2; run++) {
    for (const [name, submit] of ways) {
      const rate = 1000;
      const latencies: number[] = [];
      const sent: Promise<void>[] = [];
      const t0 = performance.now();
      for (let i = 0; i < rate * 4; i++) {
        const due = t0 + (i * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        const id = `dev_${i % DEVICES}`;
        sent.push(submit(id, report(id), Date.now()).then(() => void latencies.push(performance.now() - due)));
      }
      await Promise.all(sent);
      latencies.sort((a, b) => a - b);
      const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))].toFixed(1);
      console.log(`${name} at ${rate}/s offered: p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms`);
    }
  }
} finally {
  close();
  rmSync(dir, { recursive: true, force: true });
}
