import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../rig/index.js';
import { call, csvOf, newDevice } from './control-plane-support.js';
import { startControlPlaneChild, type ChildService } from './fleet-process.js';

/**
 * `berth control-plane` as a real process: an acknowledged write survives kill -9 (the commit is
 * on disk before the answer), and SIGTERM shuts down cleanly.
 */
describe('control plane process (kill -9 safety)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-cp-crash-'));
  let port: number;
  let cp: { url: string; svc: ChildService } | undefined;

  async function startChild(): Promise<string> {
    cp = await startControlPlaneChild({ dir, port, adminToken: '' });
    return cp.url;
  }

  beforeAll(() => {
    return freePort().then((p) => {
      port = p;
    });
  }, 300_000);

  afterAll(async () => {
    await cp?.svc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('loses no acknowledged write to kill -9, and stops cleanly on SIGTERM', async () => {
    let url = await startChild();
    const admin = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
    expect(admin).toMatch(/^berth_/);
    expect(readFileSync(join(dir, 'control-plane.log'), 'utf8')).not.toContain(admin);
    const devices = Array.from({ length: 40 }, (_, i) => newDevice(`crash-${i}`));
    const acknowledged: string[] = [];
    // Writes back to back, the kill right after the last answer: nothing is given time to settle.
    for (const d of devices) {
      const r = await call(url, 'POST', '/v1/devices/import', { token: admin, text: csvOf([d], () => 'site=crash'), type: 'text/csv' });
      expect(r.status).toBe(200);
      acknowledged.push(d.serial);
    }
    const token = await call(url, 'POST', '/v1/tokens', { token: admin, json: { name: 'after-crash', role: 'viewer' } });
    expect(token.status).toBe(201);
    expect((await cp!.svc.kill('SIGKILL')).signal).toBe('SIGKILL');

    url = await startChild();
    const list = await call(url, 'GET', '/v1/devices?selector=site%3Dcrash', { token: admin });
    expect(list.body.devices.map((d: { serial: string }) => d.serial).sort()).toEqual([...acknowledged].sort());
    expect((await call(url, 'GET', '/v1/devices', { token: token.body.token })).status).toBe(200);

    expect(await cp!.svc.kill('SIGTERM')).toEqual({ code: 0, signal: null });
  });
});
