import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpRequest, isConnectionError } from '../../common/http-client.js';
import { createLogger } from '../../common/log.js';
import { loadTrust, type HttpsTrust } from '../../common/tls-trust.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { startEdgeDaemon, type EdgeDaemon } from '../../edge-daemon/index.js';
import { enrollProofBytes } from '../../protocol/device.js';
import { signBytes, writeKeyPair } from '../../protocol/keys.js';
import { rigFromEnv } from '../rig/index.js';
import { makePrivateCa, type PrivateCa } from '../rig/private-ca.js';
import { csvOf, newDevice, type TestDevice } from './control-plane-support.js';

/**
 * `--device-client-ca` (issue 18): the device routes require a client certificate from the device
 * CA naming the serial; operators' routes do not. A real daemon enrolls with its certificate.
 */

const rig = rigFromEnv();
const ADMIN = 'berth_' + randomBytes(32).toString('base64url');
let dir = '';
let fleet: PrivateCa;
let makers: PrivateCa;
let cp: RunningControlPlane;
let plain: HttpsTrust;
const device: TestDevice = newDevice('MTLS-1');
let daemon: EdgeDaemon | undefined;

async function post(path: string, body: unknown, trust: HttpsTrust) {
  const res = await httpRequest(`${cp.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), trust });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** A GET; once more on a new connection when a kept-alive one was closed by the server as it was reused. */
function get(path: string, token: string, trust: HttpsTrust) {
  const send = () => httpRequest(`${cp.url}${path}`, { headers: { authorization: `Bearer ${token}` }, trust });
  return send().catch((err: unknown) => (isConnectionError(err) ? send() : Promise.reject(err)));
}

/** Challenge and proof, as the daemon sends them, through `trust` (which carries the client certificate or not). */
async function enroll(trust: HttpsTrust, d: TestDevice = device) {
  const ch = await post('/v1/enroll/challenge', { serial: d.serial }, trust);
  if (ch.status !== 200) return ch;
  return post('/v1/enroll', { serial: d.serial, challenge: ch.body.challenge, signature: signBytes(d.privateKey, enrollProofBytes(d.serial, ch.body.challenge)) }, trust);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-mtls-'));
  fleet = await makePrivateCa(dir, 'fleet');
  makers = await makePrivateCa(dir, 'manufacturer');
  const server = await fleet.issue('cp');
  cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'cp', 'cp.db')}`, adminToken: ADMIN, tls: { ...server, clientCaFile: makers.caFile }, log: createLogger('mtls', { level: 'silent' }) });
  plain = await loadTrust(fleet.caFile);
  const imported = await httpRequest(`${cp.url}/v1/devices/import`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'text/csv' }, body: csvOf([device, newDevice('MTLS-2')]), trust: plain });
  expect(imported.status).toBe(200);
  await imported.cancel();
}, 60_000);

afterAll(async () => {
  await daemon?.close();
  await cp?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('device client certificates', () => {
  it('operator routes need none', async () => {
    const res = await httpRequest(`${cp.url}/v1/devices`, { headers: { authorization: `Bearer ${ADMIN}` }, trust: plain });
    await res.cancel();
    expect(res.status).toBe(200);
  });

  it('a device without a certificate, with one from another CA, or with one naming another serial is refused', async () => {
    const none = await enroll(plain);
    expect(none.status).toBe(401);
    expect(none.body.error).toMatchObject({ code: 'client-certificate-required' });
    const stranger = await fleet.issue('stranger', { cn: device.serial, client: true });
    const untrusted = await enroll(await loadTrust(fleet.caFile, '--ca-file', stranger));
    expect(untrusted.status).toBe(401);
    expect(untrusted.body.error.code).toBe('client-certificate-untrusted');
    const otherSerial = await makers.issue('mtls-2', { cn: 'MTLS-2', client: true });
    const mismatch = await enroll(await loadTrust(fleet.caFile, '--ca-file', otherSerial));
    expect(mismatch.status).toBe(403);
    expect(mismatch.body.error).toMatchObject({ code: 'client-certificate-mismatch', message: 'the client certificate names CN=MTLS-2, not device MTLS-1' });
  });

  it('the matching certificate (serial in a SAN) admits the device, and its token alone is not enough afterwards', async () => {
    const own = await makers.issue('mtls-1', { cn: 'gateway', dns: [device.serial], client: true });
    const withCert = await loadTrust(fleet.caFile, '--ca-file', own);
    const ok = await enroll(withCert);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    const desired = await get('/v1/device/desired', ok.body.token, withCert);
    await desired.cancel();
    expect(desired.status).toBe(204);
    const stolen = await get('/v1/device/desired', ok.body.token, plain);
    expect(stolen.status).toBe(401);
    expect(JSON.parse(await stolen.text()).error.code).toBe('client-certificate-required');
  });

  it('a real daemon enrolls with --tls-client-cert and --tls-client-key (the key 0600, or it does not start)', async () => {
    const second = newDevice('MTLS-3');
    await mkdir(join(dir, 'gw'), { recursive: true });
    const keyFile = join(dir, 'gw', 'device.key');
    const publicKey = await writeKeyPair(keyFile);
    const imported = await httpRequest(`${cp.url}/v1/devices/import`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'text/csv' }, body: `serial,public_key,labels\n${second.serial},${publicKey},\n`, trust: plain });
    expect(imported.status).toBe(200);
    await imported.cancel();
    const cert = await makers.issue('mtls-3', { cn: second.serial, client: true });
    await chmod(cert.keyFile, 0o640);
    const common = { controlPlane: cp.url, caFile: fleet.caFile, tlsClientCert: cert.certFile, tlsClientKey: cert.keyFile, serial: second.serial, key: keyFile, dockerHost: rig.dockerHost };
    await expect(startEdgeDaemon({ ...common, stateDir: join(dir, 'gw', 'loose'), log: createLogger('mtls-daemon', { level: 'silent' }) })).rejects.toThrow(`--tls-client-key ${cert.keyFile}: mode 0640 lets others read the private key; chmod 600 ${cert.keyFile}`);
    await chmod(cert.keyFile, 0o600);
    daemon = await startEdgeDaemon({ controlPlane: cp.url, caFile: fleet.caFile, tlsClientCert: cert.certFile, tlsClientKey: cert.keyFile, stateDir: join(dir, 'gw', 'state'), serial: second.serial, key: keyFile, dockerHost: rig.dockerHost, log: createLogger('mtls-daemon', { level: 'silent' }) });
    expect(daemon.deviceId).toMatch(/.+/);
  });
});
