import { randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpRequest } from '../../common/http-client.js';
import { createLogger } from '../../common/log.js';
import { describeTlsError, loadTrust, type HttpsTrust } from '../../common/tls-trust.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { enrollProofBytes } from '../../protocol/device.js';
import { signBytes } from '../../protocol/keys.js';
import { startRegistryProxy } from '../../registry-proxy/index.js';
import { makePrivateCa, type Issued, type PrivateCa } from '../rig/private-ca.js';
import { csvOf, newDevice } from './control-plane-support.js';

/**
 * Both servers serve HTTPS themselves (issue 18), with a private CA made by `openssl` in a temp
 * dir: answers to a client that trusts the CA, a refusal in plain words to one that does not, a
 * key readable by others refused at start, SIGHUP swapping the certificate while a long poll stays
 * open, and the warning for plain HTTP on a non-loopback address.
 */

const ADMIN = 'berth_' + randomBytes(32).toString('base64url');
let dir = '';
let ca: PrivateCa;
let other: PrivateCa;
let server: Issued;
let trust: HttpsTrust;
let cp: RunningControlPlane;

const quiet = () => createLogger('tls-test', { level: 'silent' });

async function json(url: string, init: { method?: string; token?: string; body?: unknown } = {}) {
  const res = await httpRequest(url, {
    method: init.method ?? 'GET',
    headers: { ...(init.token ? { authorization: `Bearer ${init.token}` } : {}), ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    trust,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** The SHA-256 fingerprint of the certificate a fresh handshake gets. */
function servedFingerprint(url: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect({ host: u.hostname, port: Number(u.port), servername: 'localhost', ca: trustPem }, () => {
      resolve(s.getPeerX509Certificate()!.fingerprint256);
      s.end();
    });
    s.on('error', reject);
  });
}
let trustPem = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-tls-'));
  ca = await makePrivateCa(dir, 'fleet');
  other = await makePrivateCa(dir, 'other');
  server = await ca.issue('cp');
  trust = await loadTrust(ca.caFile);
  trustPem = (await import('node:fs')).readFileSync(ca.caFile, 'utf8');
  cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'cp', 'cp.db')}`, adminToken: ADMIN, tls: server, log: quiet() });
}, 60_000);

afterAll(async () => {
  await cp?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('the servers serve HTTPS themselves', () => {
  it('the control plane answers over HTTPS a client that trusts the fleet CA, and TLS 1.2 is enough', async () => {
    expect(cp.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect((await json(`${cp.url}/healthz`)).status).toBe(200);
    const u = new URL(cp.url);
    const protocol = await new Promise<string | null>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: Number(u.port), ca: trustPem, maxVersion: 'TLSv1.2' }, () => {
        resolve(s.getProtocol());
        s.end();
      });
      s.on('error', reject);
    });
    expect(protocol).toBe('TLSv1.2');
  });

  it('a client that trusts another CA is refused, and the error says why in plain words', async () => {
    const stranger = await loadTrust(other.caFile);
    const err = await httpRequest(`${cp.url}/healthz`, { trust: stranger }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(describeTlsError(err, `${cp.url}/healthz`, other.caFile)).toBe(`the TLS certificate of ${new URL(cp.url).host} is not signed by a CA this client trusts (UNABLE_TO_VERIFY_LEAF_SIGNATURE); it is not from the CA in ${other.caFile}`);
    const bare = await httpRequest(`${cp.url}/healthz`).then(() => null, (e: unknown) => e);
    expect(describeTlsError(bare, `${cp.url}/healthz`)).toMatch(/is not signed by a CA this client trusts \(.+\); pass the fleet's CA with --ca-file$/);
  });

  it('a key file others may read stops either server at start, naming the file and the fix', async () => {
    const loose = join(dir, 'loose.key');
    await copyFile(server.keyFile, loose);
    await chmod(loose, 0o644);
    const tls = { certFile: server.certFile, keyFile: loose };
    await expect(startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'cp2', 'cp.db')}`, tls, log: quiet() })).rejects.toThrow(`--tls-key ${loose}: mode 0644 lets others read the private key; chmod 600 ${loose}`);
    await expect(startRegistryProxy({ listen: '127.0.0.1:0', cacheDir: join(dir, 'cache'), upstreams: [{ alias: 'local', url: 'http://127.0.0.1:9' }], anonymous: true, tls, log: quiet() })).rejects.toThrow(/mode 0644 lets others read the private key/);
    const mismatched = { certFile: server.certFile, keyFile: (await other.issue('x')).keyFile };
    await expect(startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'cp3', 'cp.db')}`, tls: mismatched, log: quiet() })).rejects.toThrow(/--tls-cert .* \/ --tls-key .*: .*key values mismatch/);
  });

  it('the registry proxy serves HTTPS too', async () => {
    const proxy = await startRegistryProxy({ listen: '127.0.0.1:0', cacheDir: join(dir, 'proxy-cache'), upstreams: [{ alias: 'local', url: 'http://127.0.0.1:9' }], anonymous: true, tls: await ca.issue('proxy'), log: quiet() });
    try {
      expect(proxy.url).toMatch(/^https:\/\//);
      const res = await httpRequest(`${proxy.url}/v2/`, { trust });
      await res.cancel();
      expect(res.status).toBe(200);
    } finally {
      await proxy.close();
    }
  });

  it('SIGHUP swaps the certificate for new handshakes while a long poll opened before stays open and answers', async () => {
    const device = newDevice('TLS-1');
    const imported = await httpRequest(`${cp.url}/v1/devices/import`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'text/csv' }, body: csvOf([device]), trust });
    expect(imported.status).toBe(200);
    await imported.cancel();
    const { body: ch } = await json(`${cp.url}/v1/enroll/challenge`, { method: 'POST', body: { serial: device.serial } });
    const { status, body: enrolled } = await json(`${cp.url}/v1/enroll`, { method: 'POST', body: { serial: device.serial, challenge: ch.challenge, signature: signBytes(device.privateKey, enrollProofBytes(device.serial, ch.challenge)) } });
    expect(status).toBe(200);
    const before = await servedFingerprint(cp.url);
    const poll = httpRequest(`${cp.url}/v1/device/desired?wait=15`, { headers: { authorization: `Bearer ${enrolled.token}` }, trust });
    // The renewed certificate replaces the files in place, as an ACME client's deploy hook does.
    const renewed = await ca.issue('cp-renewed');
    await copyFile(renewed.certFile, server.certFile);
    await copyFile(renewed.keyFile, server.keyFile);
    process.kill(process.pid, 'SIGHUP');
    let after = before;
    for (let i = 0; i < 100 && after === before; i++) {
      await new Promise((r) => setTimeout(r, 50));
      after = await servedFingerprint(cp.url);
    }
    expect(after).not.toBe(before);
    const answer = await poll;
    expect(answer.status).toBe(204);
    await answer.cancel();
  });

  it('plain HTTP on a non-loopback address logs a loud warning; on loopback it does not', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk, _e, done) => void (lines.push(String(chunk)), done()) });
    const log = pino({ level: 'warn' }, sink);
    const open = await startControlPlane({ listen: '0.0.0.0:0', db: `file:${join(dir, 'cp4', 'cp.db')}`, log });
    await open.close();
    expect(lines.some((l) => l.includes('PLAIN HTTP ON A NON-LOOPBACK ADDRESS (0.0.0.0:0): bearer tokens travel in clear'))).toBe(true);
    lines.length = 0;
    const local = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'cp5', 'cp.db')}`, log });
    await local.close();
    expect(lines.some((l) => l.includes('PLAIN HTTP'))).toBe(false);
  });
});
