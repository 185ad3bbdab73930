import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import type { DeviceReport } from '../../protocol/device.js';
import { Reporter, type ReportBody } from '../../edge-daemon/report.js';
import { StateDir } from '../../edge-daemon/state.js';

const log = createLogger('test', { level: 'silent' });

function body(phase: ReportBody['phase']): ReportBody {
  return { desiredSequence: 1, running: null, phase, bytes: { done: 0, total: 0 }, services: {} };
}

describe('reporter', () => {
  it('queues reports while the control plane is unreachable and delivers them in order when it is back', async () => {
    const state = new StateDir(await mkdtemp(join(tmpdir(), 'berth-report-')));
    await state.init();
    const delivered: DeviceReport[] = [];
    let online = false;
    let phase: ReportBody['phase'] = 'idle';
    const r = new Reporter({
      state,
      log,
      build: async () => body(phase),
      send: async (rep) => {
        if (!online) throw new Error('unreachable');
        delivered.push(rep);
      },
      minIntervalMs: 0,
    });
    await r.start();
    for (const p of ['downloading', 'applying', 'running'] as const) {
      phase = p;
      await r.flush(10).catch(() => undefined); // offline: not delivered, still queued
    }
    expect(r.queued).toBe(3);
    expect(delivered).toEqual([]);
    online = true;
    await r.flush(10_000);
    expect(delivered.map((d) => d.phase)).toEqual(['downloading', 'applying', 'running', 'running']);
    const seqs = delivered.map((d) => d.sequence);
    expect(seqs).toEqual([1, 2, 3, 4]);
    await r.close(false);

    // A restarted daemon continues above the last sequence it used.
    const again = new Reporter({ state, log, build: async () => body('running'), send: async (rep) => void delivered.push(rep), minIntervalMs: 0 });
    await again.start();
    await again.flush();
    expect(delivered.at(-1)!.sequence).toBe(5);
    await again.close(false);
  });

  it('keeps the newest reports when the offline queue is full', async () => {
    const state = new StateDir(await mkdtemp(join(tmpdir(), 'berth-report-')));
    await state.init();
    let n = 0;
    let online = false;
    const delivered: DeviceReport[] = [];
    const send = async (rep: DeviceReport) => {
      if (!online) throw new Error('offline');
      delivered.push(rep);
    };
    const r = new Reporter({ state, log, build: async () => ({ ...body('running'), desiredSequence: ++n }), send, minIntervalMs: 0, maxQueue: 2 });
    await r.start();
    for (let i = 0; i < 5; i++) await r.flush(1).catch(() => undefined);
    expect(r.queued).toBe(2);
    // Back online with nothing new built: the retry already under way delivers what is queued
    // (a build racing that retry could let an older report out first, which is also correct).
    online = true;
    const until = Date.now() + 10_000;
    while (r.queued > 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
    // the three oldest were dropped; what remains still goes out in order
    expect(delivered.map((d) => d.desiredSequence)).toEqual([4, 5]);
    await r.close(false);
  });
});
