import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { clientKey } from '../../control-plane/device-api/enroll-guard.js';
import { call, challengeFor, csvOf, enroll, enrollWith, newDevice } from './control-plane-support.js';

type AuditEntry = { action: string; target: string; actor: string; after: { code: string; count?: number; codes?: Record<string, number> } };

/**
 * Finding 8: every refused enrollment wrote an audit row (2,000 anonymous requests, 2,000 rows), an
 * unknown serial was answered differently from a known one, and nothing limited an address. Now:
 * one answer for every refusal, a budget per client address (429 with Retry-After; a device that
 * enrolls gets its cost back), and refusals audited as one row per address and window with a count.
 */
describe('finding 8: anonymous enrollment requests cost the sender', () => {
  let dir: string;
  let cp: RunningControlPlane;
  const BURST = 60;
  // One window for the whole file (the control plane writes its row when it stops), so the rows do not depend on how fast this machine is.
  const start = () =>
    startControlPlane({
      listen: '127.0.0.1:0',
      db: `file:${join(dir, 'cp', 'berth.db')}`,
      log: createLogger('control-plane', { level: 'silent' }),
      config: { enrollBurst: BURST, enrollPerSecond: 0.1, refusalAuditWindowMs: 600_000 },
    });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-sec08-'));
    cp = await start();
  });
  afterAll(async () => {
    await cp?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const refusals = async () => ((await call(cp.url, 'GET', '/v1/audit?limit=1000', { token: cp.adminToken })).body.entries as AuditEntry[]).filter((e) => e.action === 'device.enroll.refused');

  it('answers an unknown serial, a wrong key and a revoked device alike', async () => {
    const [known, revoked, stranger] = ['SEC08-KNOWN', 'SEC08-REVOKED', 'SEC08-NOBODY'].map(newDevice);
    expect((await call(cp.url, 'POST', '/v1/devices/import', { token: cp.adminToken, text: csvOf([known, revoked]), type: 'text/csv' })).status).toBe(200);
    await enroll(cp.url, revoked);
    expect((await call(cp.url, 'POST', `/v1/devices/${revoked.serial}/revoke`, { token: cp.adminToken })).status).toBe(200);
    const answers = [
      await enrollWith(cp.url, stranger.serial, await challengeFor(cp.url, stranger.serial), stranger.privateKey),
      await enrollWith(cp.url, known.serial, await challengeFor(cp.url, known.serial), stranger.privateKey),
      await enrollWith(cp.url, known.serial, 'c'.repeat(43), known.privateKey),
      await enrollWith(cp.url, revoked.serial, await challengeFor(cp.url, revoked.serial), revoked.privateKey),
    ];
    for (const a of answers) expect({ status: a.status, body: a.body }).toEqual({ status: answers[0].status, body: answers[0].body });
    expect(answers[0].status).toBe(401);
    // The reasons are kept for the operator: the first refusal of an address at once, the rest of its window in one row.
    const rows = await refusals();
    expect(rows.map((r) => [r.target, r.actor, r.after.code])).toEqual([[stranger.serial, 'address:127.0.0.1', 'unknown-serial']]);
  });

  it('counts an IPv6 client by its /64 (a host can pick any address in it), IPv4 as it is', () => {
    expect(clientKey('2001:db8::1')).toBe(clientKey('2001:DB8:0:0:ffff::2'));
    expect(clientKey('2001:db8:0:1::1')).not.toBe(clientKey('2001:db8::1'));
    expect(clientKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
  });

  it('lets a fleet behind one address enroll, and stops a flood with 429 and Retry-After, audited in two rows', async () => {
    // More devices than the budget: each success gives its two requests back.
    const fleet = Array.from({ length: BURST }, (_, i) => newDevice(`SEC08-GW-${i}`));
    expect((await call(cp.url, 'POST', '/v1/devices/import', { token: cp.adminToken, text: csvOf(fleet), type: 'text/csv' })).status).toBe(200);
    for (const d of fleet) await enroll(cp.url, d);

    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 2 * BURST; i++) {
      const r = await enrollWith(cp.url, `SEC08-GUESS-${i}`, 'c'.repeat(43), fleet[0].privateKey);
      statuses.push(r.status);
      if (r.status === 429) retryAfter ??= r.headers.get('retry-after');
    }
    const refused = statuses.filter((s) => s === 401).length;
    expect(refused).toBeGreaterThan(BURST / 2);
    expect(refused).toBeLessThan(BURST + 10);
    expect(statuses.filter((s) => s === 429).length).toBe(2 * BURST - refused);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);

    // Still the one row of the first test until the window ends; at the end (here: the control plane stops) one more.
    expect(await refusals()).toHaveLength(1);
    await cp.close();
    cp = await start();
    const rows = await refusals();
    expect(rows).toHaveLength(2);
    expect(rows[1]).toMatchObject({ target: 'SEC08-KNOWN', actor: 'address:127.0.0.1' });
    expect(rows[1].after).toMatchObject({ code: 'refused-repeatedly', count: refused + 3, codes: { 'wrong-key': 1, 'unknown-challenge': 1, 'device-revoked': 1, 'unknown-serial': refused } });
  });
});
