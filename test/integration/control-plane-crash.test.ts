import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../rig/index.js';
import { call, csvOf, newDevice } from './control-plane-support.js';

const ROOT = resolve(import.meta.dirname, '../..');

/**
 * `berth control-plane` as a real process: an acknowledged write survives kill -9 (the commit is
 * on disk before the answer), and SIGTERM shuts down cleanly.
 */
describe('control plane process (kill -9 safety)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-cp-crash-'));
  let port: number;
  let child: ChildProcess | undefined;
  let stderr = '';

  async function startChild(): Promise<string> {
    const url = `http://127.0.0.1:${port}`;
    stderr = '';
    child = spawn(process.execPath, [join(ROOT, 'dist/bin/berth.js'), 'control-plane', '--listen', `127.0.0.1:${port}`, '--db', `file:${join(dir, 'berth.db')}`, '--data-dir', dir], {
      env: { ...process.env, BERTH_LOG_LEVEL: 'warn', BERTH_ADMIN_TOKEN: '' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    for (let i = 0; i < 300; i++) {
      if (child.exitCode !== null) throw new Error(`control plane exited ${child.exitCode}: ${stderr}`);
      const ok = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
      if (ok) return url;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`control plane did not come up: ${stderr}`);
  }

  function exited(p: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return p.exitCode !== null || p.signalCode !== null ? Promise.resolve({ code: p.exitCode, signal: p.signalCode }) : new Promise((r) => p.once('exit', (code, signal) => r({ code, signal })));
  }

  beforeAll(() => {
    return freePort().then((p) => {
      port = p;
    });
  }, 300_000);

  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited(child);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('loses no acknowledged write to kill -9, and stops cleanly on SIGTERM', async () => {
    let url = await startChild();
    const admin = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
    expect(admin).toMatch(/^berth_/);
    expect(stderr).not.toContain(admin);
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
    const victim = child as ChildProcess;
    victim.kill('SIGKILL');
    expect((await exited(victim)).signal).toBe('SIGKILL');

    url = await startChild();
    const list = await call(url, 'GET', '/v1/devices?selector=site%3Dcrash', { token: admin });
    expect(list.body.devices.map((d: { serial: string }) => d.serial).sort()).toEqual([...acknowledged].sort());
    expect((await call(url, 'GET', '/v1/devices', { token: token.body.token })).status).toBe(200);

    const running = child as ChildProcess;
    running.kill('SIGTERM');
    expect(await exited(running)).toEqual({ code: 0, signal: null });
  });
});
