import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@libsql/client';
import { createLogger } from '../../common/log.js';
import { enrollProofBytes } from '../../protocol/device.js';
import { signBytes } from '../../protocol/keys.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { call, challengeFor, csvOf, enrollWith, newDevice } from './control-plane-support.js';

/**
 * Enrollment's single use under concurrency (issue 17): the challenge is checked before the write
 * and spent by a conditional UPDATE in it, so requests racing with one challenge must still enroll
 * exactly once, within one control plane and across two on one database file (real HTTP, real
 * libSQL file; the two planes are two connections as two processes would be).
 */
describe('enrollment races', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-enroll-races-'));
  const db = `file:${join(dir, 'berth.db')}`;
  const log = createLogger('control-plane', { level: 'silent' });
  let a: RunningControlPlane;
  let b: RunningControlPlane;
  let admin: string;
  const start = () => startControlPlane({ listen: '127.0.0.1:0', db, dataDir: dir, registryProxy: null, log, config: { refusalAuditWindowMs: 200 } });

  beforeAll(async () => {
    a = await start();
    b = await start();
    admin = a.adminToken as string;
  });

  afterAll(async () => {
    await b?.close();
    await a?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const enrollAudits = async (serial: string) =>
    ((await call(a.url, 'GET', '/v1/audit', { token: admin })).body.entries as { action: string; target: string }[]).filter((e) => e.target === serial && (e.action === 'device.enroll' || e.action === 'device.renew'));

  it('enrolls exactly once when one challenge is sent many times at once, to one plane and to two', async () => {
    const one = newDevice('race-one');
    const two = newDevice('race-two');
    expect((await call(a.url, 'POST', '/v1/devices/import', { token: admin, text: csvOf([one, two]), type: 'text/csv' })).status).toBe(200);

    const ch1 = await challengeFor(a.url, one.serial);
    const same = await Promise.all(Array.from({ length: 8 }, () => enrollWith(a.url, one.serial, ch1, one.privateKey)));
    expect(same.map((r) => r.status).sort()).toEqual([200, 401, 401, 401, 401, 401, 401, 401]);
    expect(same.filter((r) => r.status === 401).every((r) => r.body.error.code === 'enrollment-refused')).toBe(true);
    expect(await enrollAudits(one.serial)).toHaveLength(1);

    // The other plane opens the challenge too (the MAC key is the data dir's), and the database decides.
    const ch2 = await challengeFor(b.url, two.serial);
    const across = await Promise.all(Array.from({ length: 8 }, (_, i) => enrollWith(i % 2 ? a.url : b.url, two.serial, ch2, two.privateKey)));
    expect(across.map((r) => r.status).sort()).toEqual([200, 401, 401, 401, 401, 401, 401, 401]);
    expect(await enrollAudits(two.serial)).toHaveLength(1);
  });

  it('refuses a challenge issued before the one a device last enrolled with, and takes a newer one', async () => {
    const d = newDevice('race-order');
    expect((await call(a.url, 'POST', '/v1/devices/import', { token: admin, text: csvOf([d]), type: 'text/csv' })).status).toBe(200);
    const older = await challengeFor(a.url, d.serial);
    await new Promise((r) => setTimeout(r, 5));
    const newer = await challengeFor(b.url, d.serial);
    expect((await enrollWith(b.url, d.serial, newer, d.privateKey)).status).toBe(200);
    const refused = await enrollWith(a.url, d.serial, older, d.privateKey);
    expect(refused.status).toBe(401);
    expect(refused.body.error.code).toBe('enrollment-refused');
    await new Promise((r) => setTimeout(r, 5));
    const renewed = await enrollWith(a.url, d.serial, await challengeFor(a.url, d.serial), d.privateKey);
    expect(renewed.status).toBe(200);
    expect((await enrollAudits(d.serial)).map((e) => e.action).sort()).toEqual(['device.enroll', 'device.renew']);
  });

  it('a burst written in batches: each device enrolled, audited and announced once; renewals in one burst register their encryption keys', async () => {
    const hook = await call(a.url, 'POST', '/v1/webhooks', { token: admin, json: { url: 'https://hooks.example.com/berth', events: ['device.enrolled'] } });
    expect(hook.status).toBe(201);
    const burst = Array.from({ length: 40 }, (_, i) => newDevice(`burst-${String(i).padStart(2, '0')}`));
    expect((await call(a.url, 'POST', '/v1/devices/import', { token: admin, text: csvOf(burst), type: 'text/csv' })).status).toBe(200);
    const first = await Promise.all(burst.map(async (d, i) => enrollWith(i % 2 ? a.url : b.url, d.serial, await challengeFor(a.url, d.serial), d.privateKey)));
    expect(first.map((r) => r.status)).toEqual(burst.map(() => 200));
    expect(new Set(first.map((r) => r.body.deviceId)).size).toBe(burst.length);

    // Renewals, half with a new encryption key (the proof covers it), all at once on one plane.
    const keys = burst.map((_, i) => (i % 2 ? randomBytes(32).toString('base64url') : undefined));
    const renewed = await Promise.all(
      burst.map(async (d, i) => {
        const challenge = await challengeFor(a.url, d.serial);
        const signature = signBytes(d.privateKey, enrollProofBytes(d.serial, challenge, keys[i]));
        return call(a.url, 'POST', '/v1/enroll', { json: { serial: d.serial, challenge, signature, ...(keys[i] ? { encryptionKey: keys[i] } : {}) } });
      }),
    );
    expect(renewed.map((r) => r.status)).toEqual(burst.map(() => 200));
    expect(renewed.map((r) => r.body.deviceId)).toEqual(first.map((r) => r.body.deviceId));

    const entries = (await call(a.url, 'GET', '/v1/audit?limit=1000', { token: admin })).body.entries as { action: string; target: string; after?: { encryptionKey?: string } }[];
    for (const [i, d] of burst.entries()) {
      const mine = entries.filter((e) => e.target === d.serial);
      expect(mine.map((e) => e.action).sort(), d.serial).toEqual(keys[i] ? ['device.encryption-key', 'device.enroll', 'device.renew'] : ['device.enroll', 'device.renew']);
      if (keys[i]) expect(mine.find((e) => e.action === 'device.encryption-key')?.after?.encryptionKey).toBe(keys[i]);
    }
    const client = createClient({ url: db });
    try {
      const rows = (await client.execute("SELECT serial, status, encryption_key, enrolled_at IS NOT NULL AS dated FROM devices WHERE serial LIKE 'burst-%' ORDER BY serial")).rows;
      expect(rows.map((r) => [r.serial, r.status, r.encryption_key ?? null, Number(r.dated)])).toEqual(burst.map((d, i) => [d.serial, 'enrolled', keys[i] ?? null, 1]));
      // One device.enrolled event per first enrollment, none for a renewal.
      const events = (await client.execute("SELECT subject FROM webhook_events WHERE type = 'device.enrolled' AND subject LIKE 'devices/burst-%' ORDER BY subject")).rows;
      expect(events.map((r) => r.subject)).toEqual(burst.map((d) => `devices/${d.serial}`));
    } finally {
      client.close();
    }
  });
});
