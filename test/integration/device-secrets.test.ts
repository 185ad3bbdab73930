import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../cli/index.js';
import { capturingIo, type CapturedIo } from './cli-support.js';
import { checkSecrets } from '../../control-plane/device-secrets/check.js';
import { SecretsLacking, secretInputs, snapshotSecrets } from '../../control-plane/device-secrets/snapshot.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import type { Manifest } from '../../manifests/model.js';
import { enrollProofBytes } from '../../protocol/device.js';
import { signBytes } from '../../protocol/keys.js';
import { encryptionKeyToRaw, openForDevice } from '../../protocol/secret-box.js';
import { call, challengeFor, csvOf, newDevice, type TestDevice } from './control-plane-support.js';
import { capturedLog } from './security-support.js';

/**
 * Secrets in the control plane, over real HTTP and a real libSQL file: set by the CLI from a file
 * or stdin, listed without values, sealed at rest, resolved device > selector > fleet, checked up
 * front, and snapshotted as JWEs only the addressed device opens.
 */

const ADMIN = 'berth_' + randomBytes(32).toString('base64url');
// Distinctive plaintexts: any copy of them in a file or a log line is found by a byte search.
const VALUE_A = `site-a-pw-${randomBytes(12).toString('hex')}`;
const VALUE_B = `site-b-pw-${randomBytes(12).toString('hex')}`;
const VALUE_FLEET = `fleet-pw-${randomBytes(12).toString('hex')}`;
let dir: string;
/** The control plane's own data dir: the database, its -wal and -shm, the key secret. */
let data: string;
let cp: RunningControlPlane;
let rm_: string;
let viewer: string;
const captured = capturedLog();
const A = newDevice('SEC-A');
const B = newDevice('SEC-B');
const C = newDevice('SEC-C');
const x25519 = () => {
  const p = generateKeyPairSync('x25519');
  return { privateKey: p.privateKey, raw: encryptionKeyToRaw(p.publicKey) };
};
const encA = x25519();
const encB = x25519();

function cliIo(token: string, stdin = ''): CapturedIo {
  return capturingIo({ BERTH_SERVER: cp.url, BERTH_TOKEN: token }, { stdin }).io;
}

async function enrollWithKey(d: TestDevice, sendKey: string | undefined, proveKey = sendKey) {
  const challenge = await challengeFor(cp.url, d.serial);
  const signature = signBytes(d.privateKey, enrollProofBytes(d.serial, challenge, proveKey));
  return call(cp.url, 'POST', '/v1/enroll', { json: { serial: d.serial, challenge, signature, ...(sendKey ? { encryptionKey: sendKey } : {}) } });
}

async function storedKey(serial: string): Promise<string | null> {
  const r = await cp.ctx.client.execute({ sql: 'SELECT encryption_key FROM devices WHERE serial = ?', args: [serial] });
  return (r.rows[0]?.encryption_key as string | null) ?? null;
}

const spec = { name: 'app', version: '1.0.0', services: { web: { image: 'x', secrets: [{ source: 'db_password', target: 'db_password', uid: 0, gid: 0, mode: 0o400 }] } } } as unknown as Manifest;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-secrets-'));
  data = join(dir, 'data');
  cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(data, 'berth.db')}`, dataDir: data, adminToken: ADMIN, log: captured.log });
  for (const [d, labels] of [[A, 'site=a'], [B, 'site=b'], [C, 'site=a;tier=canary']] as const) {
    expect((await call(cp.url, 'POST', '/v1/devices/import', { token: ADMIN, text: csvOf([d], () => labels), type: 'text/csv' })).status).toBe(200);
  }
  rm_ = (await call(cp.url, 'POST', '/v1/tokens', { token: ADMIN, json: { name: 'rm', role: 'release-manager' } })).body.token as string;
  viewer = (await call(cp.url, 'POST', '/v1/tokens', { token: ADMIN, json: { name: 'v', role: 'viewer' } })).body.token as string;
});

afterAll(async () => {
  await cp?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('device encryption keys', () => {
  it('are stored from an enrollment whose proof covers them, and a proof over another key is refused', async () => {
    expect((await enrollWithKey(A, encA.raw)).status).toBe(200);
    expect(await storedKey('SEC-A')).toBe(encA.raw);
    // Someone who saw a renewal cannot put their key on B's name: the signature covers the key.
    const forged = await enrollWithKey(B, x25519().raw, encB.raw);
    expect(forged.status).toBe(401);
    expect(forged.body.error.code).toBe('enrollment-refused');
    expect(await storedKey('SEC-B')).toBeNull();
  });

  it('a device enrolled without one (an older daemon) registers it at its next renewal', async () => {
    expect((await enrollWithKey(B, undefined)).status).toBe(200);
    expect(await storedKey('SEC-B')).toBeNull();
    expect((await enrollWithKey(B, encB.raw)).status).toBe(200);
    expect(await storedKey('SEC-B')).toBe(encB.raw);
  });
});

describe('berth secrets', () => {
  it('sets from a file and from stdin, never from argv, and lists without values', async () => {
    const file = join(dir, 'a.txt');
    await writeFile(file, VALUE_A, { mode: 0o600 });
    expect(await run(['secrets', 'set', 'db_password', '--selector', 'site=a', '--from-file', file], cliIo(rm_))).toBe(0);
    expect(await run(['secrets', 'set', 'db_password', '--selector', 'site=b', '--from-stdin'], cliIo(rm_, VALUE_B))).toBe(0);
    expect(await run(['secrets', 'set', 'db_password', '--fleet', '--from-stdin'], cliIo(rm_, VALUE_FLEET))).toBe(0);
    const argv = cliIo(rm_);
    expect(await run(['secrets', 'set', 'db_password', VALUE_A, '--fleet'], argv)).toBe(2);
    expect(argv.stderr.join('\n')).toMatch(/unexpected argument/);
    const noScope = cliIo(rm_);
    expect(await run(['secrets', 'set', 'db_password', '--from-file', file], noScope)).toBe(2);
    expect(noScope.stderr.join('\n')).toMatch(/exactly one of --device SERIAL, --selector SEL, --fleet/);

    const list = cliIo(rm_);
    expect(await run(['secrets', 'list', '--output', 'json'], list)).toBe(0);
    expect(JSON.parse(list.stdout.join('\n')).map((s: { scope: string; target: string | null; version: number }) => [s.scope, s.target, s.version])).toEqual([
      ['fleet', null, 1],
      ['selector', 'site=a', 1],
      ['selector', 'site=b', 1],
    ]);
    for (const v of [VALUE_A, VALUE_B, VALUE_FLEET]) expect(list.stdout.join('\n')).not.toContain(v);
    expect((await call(cp.url, 'GET', '/v1/secrets', { token: viewer })).status).toBe(403);
  });

  it('rotates to a new version and removes one scope, audited without values', async () => {
    const again = cliIo(rm_, VALUE_FLEET + '-2');
    expect(await run(['secrets', 'set', 'db_password', '--fleet', '--from-stdin'], again)).toBe(0);
    expect(again.stdout.join('\n')).toBe('secret db_password for the fleet is at version 2');
    expect(await run(['secrets', 'set', 'tmp', '--device', 'SEC-C', '--from-stdin'], cliIo(rm_, 'x'))).toBe(0);
    const removed = cliIo(rm_);
    expect(await run(['secrets', 'rm', 'tmp', '--device', 'SEC-C', '--yes'], removed)).toBe(0);
    expect(removed.stdout.join('\n')).toBe('removed secret tmp (version 1) for device SEC-C');
    expect(await run(['secrets', 'rm', 'tmp', '--device', 'SEC-C', '--yes'], cliIo(rm_))).not.toBe(0);
    const audit = await call(cp.url, 'GET', '/v1/audit?limit=100', { token: ADMIN });
    expect(audit.status).toBe(200);
    const actions = (audit.body.entries as { action: string }[]).map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['secret.create', 'secret.rotate', 'secret.delete']));
    for (const v of [VALUE_A, VALUE_B, VALUE_FLEET]) expect(JSON.stringify(audit.body)).not.toContain(v);
  });

  it('checks a rollout up front: no encryption key, two matching selectors', async () => {
    expect(await run(['secrets', 'set', 'db_password', '--selector', 'tier=canary', '--from-stdin'], cliIo(rm_, 'canary'))).toBe(0);
    const check = await checkSecrets(cp.ctx.db, spec, '');
    expect(check.ok).toBe(false);
    expect(check.sample.map((s) => s.serial)).toEqual(['SEC-C']);
    expect(check.sample[0].problems).toEqual([
      expect.stringMatching(/^an encryption key \(/),
      'secret db_password (conflict: set for selectors site=a and tier=canary, which both match it)',
    ]);
    expect((await checkSecrets(cp.ctx.db, spec, 'site in (a,b),tier!=canary')).ok).toBe(true);
    expect(await run(['secrets', 'rm', 'db_password', '--selector', 'tier=canary', '--yes'], cliIo(rm_))).toBe(0);
  });

  it('snapshots a JWE that opens only with the addressed device key, with that device\'s value', async () => {
    const ids = Object.fromEntries((await cp.ctx.client.execute('SELECT serial, id FROM devices')).rows.map((r) => [r.serial as string, r.id as string]));
    const inputs = (await secretInputs(cp.ctx.db, spec, cp.ctx.keys.vault))!;
    const device = (serial: string, labels: Record<string, string>) => ({ id: ids[serial], serial, labels });
    const s = (await snapshotSecrets(cp.ctx.db, inputs, device('SEC-A', { site: 'a' }))).db_password;
    const opened = await openForDevice(s.jwe, encA.privateKey, encA.raw, { device: ids['SEC-A'], name: 'db_password', ref: s.ref });
    expect(Buffer.from(opened).toString()).toBe(VALUE_A);
    await expect(openForDevice(s.jwe, encB.privateKey, encB.raw, { device: ids['SEC-A'], name: 'db_password', ref: s.ref })).rejects.toThrow(/addressed to another encryption key/);
    await expect(openForDevice(s.jwe, encB.privateKey, encB.raw, { device: ids['SEC-B'], name: 'db_password', ref: s.ref })).rejects.toThrow(/addressed to device/);
    const b = (await snapshotSecrets(cp.ctx.db, inputs, device('SEC-B', { site: 'b' }))).db_password;
    expect(Buffer.from(await openForDevice(b.jwe, encB.privateKey, encB.raw, { device: ids['SEC-B'], name: 'db_password', ref: b.ref })).toString()).toBe(VALUE_B);
    await expect(snapshotSecrets(cp.ctx.db, inputs, device('SEC-C', { site: 'a', tier: 'canary' }))).rejects.toThrow(SecretsLacking);
  });

  it('leaves no plaintext in the database files or the logs', async () => {
    // The WAL is where a fresh write sits: read every file of the data dir as it is now.
    const names = await readdir(data);
    expect(names).toEqual(expect.arrayContaining(['berth.db', 'berth.db-wal']));
    for (const n of names) {
      const bytes = await readFile(join(data, n)).catch(() => Buffer.alloc(0));
      for (const v of [VALUE_A, VALUE_B, VALUE_FLEET, VALUE_FLEET + '-2']) {
        expect(bytes.includes(v), `${n} holds a secret in clear`).toBe(false);
        expect(bytes.includes(Buffer.from(v).toString('base64')), `${n} holds a secret in base64`).toBe(false);
      }
    }
    const logs = JSON.stringify(captured.lines);
    expect(captured.lines.length).toBeGreaterThan(0);
    for (const v of [VALUE_A, VALUE_B, VALUE_FLEET]) {
      expect(logs).not.toContain(v);
      expect(logs).not.toContain(Buffer.from(v).toString('base64'));
    }
  });
});
