import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { lackingFor, resolveSecret, secretRef, type ScopedSecret } from '../../control-plane/device-secrets/resolve.js';
import { secretMounts } from '../../edge-daemon/secrets/mounts.js';
import { configHash } from '../../edge-daemon/reconcile/spec.js';
import type { Service } from '../../manifests/model.js';
import { enrollProofBytes } from '../../protocol/device.js';
import { encryptionKeyToRaw, openForDevice, sealForDevice } from '../../protocol/secret-box.js';

const row = (id: string, scope: ScopedSecret['scope'], target: string, version = 1): ScopedSecret => ({ id, name: 'db', scope, target, version });
const dev = { id: 'dev-1', serial: 'GW-1', labels: { site: 'berlin', tier: 'canary' } };

describe('secret resolution (device > selector > fleet)', () => {
  it('takes the device value, else the one matching selector, else the fleet', () => {
    const fleet = row('f', 'fleet', '');
    const berlin = row('b', 'selector', 'site=berlin');
    const paris = row('p', 'selector', 'site=paris');
    expect(resolveSecret([fleet, berlin, paris, row('d', 'device', 'dev-1')], dev)).toMatchObject({ kind: 'value', secret: { id: 'd' } });
    expect(resolveSecret([fleet, berlin, paris, row('x', 'device', 'dev-2')], dev)).toMatchObject({ kind: 'value', secret: { id: 'b' } });
    expect(resolveSecret([fleet, paris], dev)).toMatchObject({ kind: 'value', secret: { id: 'f' } });
    expect(resolveSecret([paris], dev)).toEqual({ kind: 'missing' });
  });

  it('calls two matching selector values a conflict, never a pick', () => {
    expect(resolveSecret([row('b', 'selector', 'site=berlin'), row('c', 'selector', 'tier=canary')], dev)).toEqual({ kind: 'conflict', selectors: ['site=berlin', 'tier=canary'] });
  });

  it('names what a device lacks: its key, a value', () => {
    expect(lackingFor(['db'], new Map(), { ...dev, encryptionKey: null }).map((l) => l.name)).toEqual(['an encryption key', 'secret db']);
    expect(lackingFor([], new Map(), { ...dev, encryptionKey: null })).toEqual([]);
  });

  it('gives a new ref on rotation and on a new device key', () => {
    const a = secretRef({ id: 's', version: 1 }, 'k'.repeat(43));
    expect(secretRef({ id: 's', version: 2 }, 'k'.repeat(43))).not.toBe(a);
    expect(secretRef({ id: 's', version: 1 }, 'j'.repeat(43))).not.toBe(a);
    expect(secretRef({ id: 's', version: 1 }, 'k'.repeat(43))).toBe(a);
  });
});

describe('secret files on the gateway (pure paths)', () => {
  const svc: Service = { image: 'x', environment: {}, networkMode: 'none', restart: 'no', volumes: [], dependsOn: {}, labels: {}, secrets: [{ source: 'db', target: 'db.txt', uid: 1000, gid: 1000, mode: 0o400 }] };
  it('mounts each entry at /run/secrets/<target> from a dir that changes with the version, and so does the config hash', () => {
    const one = secretMounts('/run/berth', 'dev-1', 'app', svc, { db: { ref: 'r1', jwe: 'x' } });
    const two = secretMounts('/run/berth', 'dev-1', 'app', svc, { db: { ref: 'r2', jwe: 'y' } });
    expect(one).toEqual([{ name: 'db', source: expect.stringMatching(/^\/run\/berth\/dev-1\/secrets\/app-[0-9a-f]{12}\/db\.txt$/), target: '/run/secrets/db.txt', ref: 'r1', uid: 1000, gid: 1000, mode: 0o400 }]);
    expect(two[0].source).not.toBe(one[0].source);
    // The JWE alone (re-randomized for the same version) moves nothing.
    expect(secretMounts('/run/berth', 'dev-1', 'app', svc, { db: { ref: 'r1', jwe: 'z' } })).toEqual(one);
    const ctx = (secrets: typeof one) => ({ networks: {}, peers: {}, secrets });
    expect(configHash(svc, ctx(one))).not.toBe(configHash(svc, ctx(two)));
    expect(() => secretMounts('/run/berth', 'dev-1', 'app', svc, {})).toThrow(/mounts secret db, which the document does not carry/);
  });
});

describe('the enrollment proof and the JWE', () => {
  it('covers the encryption key only in v2, so v1 signatures cannot carry one', () => {
    expect(enrollProofBytes('GW-1', 'c')).toBe('berth-enroll-v1\nGW-1\nc');
    expect(enrollProofBytes('GW-1', 'c', 'K')).toBe('berth-enroll-v2\nGW-1\nc\nx25519:K');
  });

  it('opens for the addressed device and refuses a moved or retargeted JWE with the reason', async () => {
    const k = generateKeyPairSync('x25519');
    const raw = encryptionKeyToRaw(k.publicKey);
    const jwe = await sealForDevice(Buffer.from('s3cret'), raw, { device: 'd1', name: 'db', ref: 'r1' });
    expect(jwe).not.toContain('s3cret');
    expect(Buffer.from(await openForDevice(jwe, k.privateKey, raw, { device: 'd1', name: 'db', ref: 'r1' })).toString()).toBe('s3cret');
    await expect(openForDevice(jwe, k.privateKey, raw, { device: 'd1', name: 'api', ref: 'r1' })).rejects.toThrow(/carries the JWE of db@r1/);
    await expect(openForDevice(jwe, k.privateKey, raw, { device: 'd2', name: 'db', ref: 'r1' })).rejects.toThrow(/addressed to device d1, this device is d2/);
  });
});
