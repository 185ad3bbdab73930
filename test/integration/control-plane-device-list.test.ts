import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { matchesSelector, parseSelector } from '../../control-plane/selector.js';
import { call, csvOf, enroll, newDevice, type TestDevice } from './control-plane-support.js';

/**
 * GET /v1/devices over real HTTP on a real libSQL file: SQLite filters with the selector compiled
 * to SQL and pages by serial; the answer must be what filtering every device in memory gives.
 */
describe('device list', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-list-'));
  let cp: RunningControlPlane;
  let admin: string;
  const SITES = ['berlin', 'munich', 'paris'];
  // 60 devices, labels varied enough that every operator picks a different subset; some lack keys.
  const fleet: { device: TestDevice; labels: Record<string, string> }[] = Array.from({ length: 60 }, (_, i) => {
    const labels: Record<string, string> = { site: SITES[i % 3] };
    if (i % 4 === 0) labels.tier = 'canary';
    else if (i % 4 === 1) labels.tier = 'prod';
    if (i % 5 === 0) labels.beta = '';
    return { device: newDevice(`gw-${String(i).padStart(3, '0')}`), labels };
  });
  const labelText = (l: Record<string, string>) => Object.entries(l).map(([k, v]) => `${k}=${v}`).join(';');
  const expected = (selector: string) =>
    fleet
      .filter((f) => matchesSelector(parseSelector(selector), f.labels))
      .map((f) => f.device.serial)
      .sort();
  const list = (query: string) => call(cp.url, 'GET', `/v1/devices?${query}`, { token: admin });

  beforeAll(async () => {
    cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'berth.db')}`, dataDir: dir, registryProxy: null, log: createLogger('cp', { level: 'silent' }) });
    admin = cp.adminToken as string;
    const byLabels = new Map(fleet.map((f) => [f.device.serial, f.labels]));
    const csv = csvOf(
      fleet.map((f) => f.device),
      (d) => labelText(byLabels.get(d.serial) ?? {}),
    );
    const r = await call(cp.url, 'POST', '/v1/devices/import', { token: admin, text: csv, type: 'text/csv' });
    expect(r.body).toEqual({ created: 60, updated: 0, unchanged: 0 });
    // One device enrolls and polls: a sighting held in memory (not flushed yet) must show it online.
    const { token } = await enroll(cp.url, fleet[1].device);
    expect((await call(cp.url, 'GET', '/v1/device/desired', { token })).status).toBe(204);
  });

  afterAll(async () => {
    await cp?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each(['', 'site=berlin', 'site!=berlin', 'tier in (canary,prod)', 'tier notin (canary)', 'beta', '!beta', 'site=paris,!tier', 'tier=nope'])(
    'picks and counts what matching in memory picks for %j',
    async (selector) => {
      const r = await list(`selector=${encodeURIComponent(selector)}&limit=1000`);
      expect(r.status).toBe(200);
      expect(r.body.devices.map((d: { serial: string }) => d.serial)).toEqual(expected(selector));
      expect(r.body.total).toBe(expected(selector).length);
      expect(r.body.next).toBeNull();
    },
  );

  it('walks every page with after=next, in serial order, each device once, total the same on each page', async () => {
    const want = expected('site!=munich');
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    do {
      const r = await list(`selector=${encodeURIComponent('site!=munich')}&limit=7${after ? `&after=${encodeURIComponent(after)}` : ''}`);
      expect(r.status).toBe(200);
      expect(r.body.total).toBe(want.length);
      expect(r.body.devices.length).toBeLessThanOrEqual(7);
      seen.push(...r.body.devices.map((d: { serial: string }) => d.serial));
      after = r.body.next;
      pages++;
    } while (after !== null && pages < 20);
    expect(seen).toEqual(want);
    expect(pages).toBe(Math.ceil(want.length / 7));
  });

  it('pages with offset too, and answers an empty page past the end', async () => {
    const want = expected('tier=canary');
    const second = await list(`selector=${encodeURIComponent('tier=canary')}&limit=5&offset=5`);
    expect(second.body.devices.map((d: { serial: string }) => d.serial)).toEqual(want.slice(5, 10));
    expect(second.body.next).toBe(want.length > 10 ? want[9] : null);
    const past = await list(`selector=${encodeURIComponent('tier=canary')}&limit=5&offset=1000`);
    expect(past.body).toEqual({ devices: [], total: want.length, next: null });
  });

  it('keeps each row as before: labels, status, online from the latest sighting, desired and phase', async () => {
    const r = await list(`selector=${encodeURIComponent('site=munich,tier=prod')}&limit=1`);
    const enrolled = fleet[1];
    expect(enrolled.labels).toEqual({ site: 'munich', tier: 'prod' });
    expect(r.body.devices[0]).toMatchObject({ serial: enrolled.device.serial, labels: enrolled.labels, status: 'enrolled', online: true, desired: null, phase: null, running: null });
    expect(Date.now() - Date.parse(r.body.devices[0].lastSeenAt)).toBeLessThan(60_000);
    const other = await list(`selector=${encodeURIComponent('site=munich,tier=prod')}&limit=1&after=${enrolled.device.serial}`);
    expect(other.body.devices[0]).toMatchObject({ status: 'registered', online: false, lastSeenAt: null });
    expect(Object.keys(r.body.devices[0]).sort()).toEqual(['desired', 'id', 'labels', 'lastSeenAt', 'online', 'phase', 'running', 'serial', 'status']);
  });

  it('refuses a bad selector, limit or cursor by name', async () => {
    const bad = await list(`selector=${encodeURIComponent('site in (berlin')}`);
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'invalid-selector', field: 'selector' });
    expect((await list('limit=0')).body.error).toMatchObject({ field: 'limit' });
    expect((await list('after=')).body.error).toMatchObject({ field: 'after' });
  });
});
