import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'libsql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceReport } from '../../protocol/device.js';
import { freePort } from '../rig/index.js';
import { call, csvOf, enroll, newDevice } from './control-plane-support.js';
import { PRIORITY_STEP } from '../../control-plane/cluster-nice.js';
import { jsonLogLines, loggedLine, startControlPlaneChild, type ChildService, type LogLine } from './fleet-process.js';

/**
 * `berth control-plane --workers 3` as a real process tree on one libSQL file: from three workers
 * up (cluster-size.ts, WRITER_FROM_WORKERS; two write their own, control-plane-workers.test.ts) every
 * worker's reports and enrollments are written by the one writer process (control-plane/cluster-writer.ts),
 * a report is acknowledged only after the writer's commit, so a kill -9 of the writer right after
 * the acknowledgement loses nothing, and the writer is started again and writes on.
 */
describe('the writer process of --workers 3', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-cp-writer-'));
  const file = join(dir, 'berth.db');
  let cp: { url: string; svc: ChildService };
  let admin: string;

  const log = () => readFileSync(join(dir, 'control-plane.log'), 'utf8');
  const lines = () => jsonLogLines(log());
  const logged = (what: string, predicate: (l: LogLine) => boolean) => loggedLine(log, what, predicate);

  /** The device's last report as committed in the file, read by a connection of the test's own. */
  function committed(deviceId: string): { sequence: number; phase: string; history: number } | undefined {
    const db = new Database(file, { readonly: true });
    try {
      const row = db.prepare('SELECT sequence, phase FROM reported WHERE device_id = ?').get(deviceId) as { sequence: number; phase: string } | undefined;
      const history = (db.prepare('SELECT count(*) AS n FROM report_history WHERE device_id = ?').get(deviceId) as { n: number }).n;
      return row && { sequence: Number(row.sequence), phase: row.phase, history: Number(history) };
    } finally {
      db.close();
    }
  }

  /** A thread's niceness, from /proc (field 19 of stat, counted after the name's closing parenthesis: the name may hold spaces). */
  function niceOf(pid: number, tid: number | string = pid): number {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
  }

  const report = (sequence: number, phase: DeviceReport['phase']): DeviceReport => ({ sequence, desiredSequence: null, running: null, phase, bytes: { done: 0, total: 0 }, services: {}, at: new Date().toISOString() });

  beforeAll(async () => {
    cp = await startControlPlaneChild({ dir, port: await freePort(), adminToken: '', args: ['--workers', '3'], logLevel: 'info' });
    admin = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
  }, 120_000);

  afterAll(async () => {
    await cp?.svc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs the HTTP workers, every thread of them, nicer than the primary and the writer', async () => {
    const started = (await logged('the cluster listening', (l) => l.msg === 'control plane listening' && l.workers === 3)) as LogLine & { pids: number[] };
    const writer = await logged('the writer ready', (l) => l.msg === 'writer ready');
    const primary = niceOf(cp.svc.pid);
    // The primary relays and the writer commits every report of the cluster: they keep the service's niceness.
    expect(niceOf(writer.pid as number)).toBe(primary);
    const workers = started.pids.filter((p) => p !== writer.pid);
    expect(workers).toHaveLength(3);
    for (const pid of workers) {
      const threads = readdirSync(`/proc/${pid}/task`);
      expect(threads.length).toBeGreaterThan(1);
      for (const tid of threads) expect(niceOf(pid, tid), `worker ${pid} thread ${tid}`).toBe(Math.min(19, primary + PRIORITY_STEP));
    }
  });

  it('writes the reports of every worker, loses none acknowledged to kill -9 of the writer, and writes on once it is replaced', async () => {
    const ready = await logged('the writer ready', (l) => l.msg === 'writer ready');
    expect(ready.worker).toBe(4);
    // The workers' batches come on its own socket (cluster-writer-socket.ts), not through the primary.
    expect(String(ready.socket)).toMatch(/writer-\d+\.sock$/);
    const devices = Array.from({ length: 6 }, (_, i) => newDevice(`writer-${i}`));
    expect((await call(cp.url, 'POST', '/v1/devices/import', { token: admin, text: csvOf(devices), type: 'text/csv' })).status).toBe(200);
    // Enrollments go through the writer too.
    const enrolled = await Promise.all(devices.map((d) => enroll(cp.url, d)));

    // All at once (several connections, so several workers take some), the kill right after the last answer.
    const answers = await Promise.all(enrolled.map((e) => call(cp.url, 'POST', '/v1/device/report', { token: e.token, json: report(1, 'downloading') })));
    expect(answers.map((a) => [a.status, a.body])).toEqual(enrolled.map(() => [202, { accepted: true }]));
    process.kill(ready.pid as number, 'SIGKILL');
    for (const e of enrolled) expect(committed(e.deviceId)).toEqual({ sequence: 1, phase: 'downloading', history: 1 });

    await logged('the writer started again', (l) => l.msg === 'writer ready' && l.pid !== ready.pid);
    const again = await Promise.all(enrolled.map((e) => call(cp.url, 'POST', '/v1/device/report', { token: e.token, json: report(2, 'running') })));
    expect(again.map((a) => [a.status, a.body])).toEqual(enrolled.map(() => [202, { accepted: true }]));
    // Not newer than the last: not accepted, nothing written.
    const stale = await call(cp.url, 'POST', '/v1/device/report', { token: enrolled[0].token, json: report(1, 'failed') });
    expect([stale.status, stale.body]).toEqual([202, { accepted: false }]);
    for (const e of enrolled) expect(committed(e.deviceId)).toEqual({ sequence: 2, phase: 'running', history: 2 });
    // The replacement was the writer's alone: every worker kept serving.
    expect(lines().filter((l) => /^worker \d+ killed/.test(String(l.msg))).map((l) => l.msg)).toEqual(['worker 4 killed by SIGKILL; starting another']);

    // The whole tree killed right after an acknowledgement: the report is there when the control plane starts again.
    const last = await call(cp.url, 'POST', '/v1/device/report', { token: enrolled[1].token, json: report(3, 'running') });
    expect([last.status, last.body]).toEqual([202, { accepted: true }]);
    expect((await cp.svc.kill('SIGKILL')).signal).toBe('SIGKILL');
    cp = await startControlPlaneChild({ dir, port: Number(new URL(cp.url).port), adminToken: '', args: ['--workers', '3'], logLevel: 'info' });
    const device = await call(cp.url, 'GET', `/v1/devices/${devices[1].serial}`, { token: admin });
    expect(device.status).toBe(200);
    expect(committed(enrolled[1].deviceId)).toEqual({ sequence: 3, phase: 'running', history: 3 });
  }, 120_000);
});
