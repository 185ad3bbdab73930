import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../rig/index.js';
import { makePrivateCa, type Issued, type PrivateCa } from '../rig/private-ca.js';

const ROOT = resolve(import.meta.dirname, '../..');

/**
 * `berth control-plane --workers 2` over HTTPS: SIGHUP to the primary (the pid an operator or
 * systemd signals) makes every worker load the renewed certificate, and the primary lives on.
 */
describe('control plane with --workers 2 over TLS', () => {
  let dir = '';
  let ca: PrivateCa;
  let server: Issued;
  let caPem = '';
  let child: ChildProcess;
  let base = '';
  let output = '';

  /** One request on a new connection: which worker answered, with which certificate. */
  function handshake(): Promise<{ worker: string; fingerprint: string }> {
    return new Promise((resolveAnswer, reject) => {
      const req = request(`${base}/healthz`, { ca: caPem, agent: false }, (res) => {
        const fingerprint = (res.socket as TLSSocket).getPeerX509Certificate()?.fingerprint256 ?? '';
        res.resume();
        res.on('end', () => resolveAnswer({ worker: String(res.headers['x-berth-worker']), fingerprint }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  /** The certificate each worker serves, by worker. */
  async function served(): Promise<Map<string, string>> {
    const seen = new Map<string, string>();
    for (let i = 0; i < 20 && seen.size < 2; i++) {
      const h = await handshake();
      seen.set(h.worker, h.fingerprint);
    }
    return seen;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-cp-workers-tls-'));
    ca = await makePrivateCa(dir, 'fleet');
    server = await ca.issue('cp');
    caPem = await readFile(ca.caFile, 'utf8');
    const port = await freePort();
    base = `https://localhost:${port}`;
    child = spawn(process.execPath, [join(ROOT, 'dist/bin/berth.js'), 'control-plane', '--workers', '2', '--listen', `127.0.0.1:${port}`, '--tls-cert', server.certFile, '--tls-key', server.keyFile, '--db', `file:${join(dir, 'cp', 'berth.db')}`], {
      env: { ...process.env, BERTH_LOG_LEVEL: 'info', BERTH_ADMIN_TOKEN: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (output += b.toString()));
    for (let i = 0; i < 600 && !output.includes('"workers":2'); i++) {
      if (child.exitCode !== null) throw new Error(`control plane exited ${child.exitCode}: ${output}`);
      await sleep(100);
    }
    expect(output).toContain('"msg":"control plane listening"');
  }, 120_000);

  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('SIGHUP to the primary swaps the certificate in every worker', async () => {
    const before = await served();
    expect([...before.keys()].sort()).toEqual(['1', '2']);
    expect(new Set(before.values()).size).toBe(1);
    const old = [...before.values()][0];

    const renewed = await ca.issue('cp-renewed');
    await copyFile(renewed.certFile, server.certFile);
    await copyFile(renewed.keyFile, server.keyFile);
    child.kill('SIGHUP');
    let after = before;
    for (let i = 0; i < 100 && [...after.values()].some((f) => f === old); i++) {
      await sleep(100);
      after = await served();
    }
    expect([...after.keys()].sort()).toEqual(['1', '2']);
    for (const fingerprint of after.values()) expect(fingerprint).not.toBe(old);
    expect(child.exitCode).toBeNull();

    child.kill('SIGTERM');
    expect(await new Promise((r) => child.once('exit', (code) => r(code)))).toBe(0);
  });
});
