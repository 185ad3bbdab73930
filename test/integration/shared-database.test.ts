import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../control-plane/db/open.js';
import { forgeImage } from '../rig/forge.js';
import { freePort, rigFromEnv } from '../rig/index.js';
import { call, jwtHeader } from './control-plane-support.js';
import { startControlPlaneChild, type ChildService } from './fleet-process.js';
import { waitFor } from './wait.js';
import { enrollFleet, publish, SimGateway } from './sim-gateway.js';

const ADMIN = 'berth_' + randomBytes(32).toString('base64url');

interface Plane {
  name: string;
  url: string;
  svc: ChildService;
}

/**
 * The shared-database mode (issue 17) with real processes: two independent `berth control-plane`
 * processes on one `file:` database (WAL), each with its own port. A desired-state change made
 * through one wakes a long poll waiting on the other (the change feed), exactly one of them drives
 * campaigns (the singletons lease), the survivor takes the lease over when its holder is killed
 * with -9, a report acknowledged with 202 is on disk when the server is killed right after, and a
 * signing key revoked through one is refused by the other.
 */
describe('two control planes sharing one database file', { timeout: 240_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-shared-db-'));
  const db = `file:${join(dir, 'berth.db')}`;
  const planes: Plane[] = [];
  const gws = [1, 2, 3].map((i) => new SimGateway(`shared-${i}`));
  let image = '';

  async function start(name: string): Promise<Plane> {
    // One process each (no cluster): two independent control planes, each pid its own lease holder id.
    const { url, svc } = await startControlPlaneChild({ name, dir, db, port: await freePort(), adminToken: ADMIN, args: ['--workers', '1'], logLevel: 'info' });
    const plane = { name, url, svc };
    planes.push(plane);
    return plane;
  }

  async function kill9(p: Plane): Promise<void> {
    await p.svc.kill('SIGKILL');
    planes.splice(planes.indexOf(p), 1);
  }

  async function gauge(p: Plane, name: string): Promise<number> {
    const r = await fetch(`${p.url}/metrics`);
    const line = (await r.text()).split('\n').find((l) => l.startsWith(`${name} `));
    if (!line) throw new Error(`${p.name} exports no ${name}`);
    return Number(line.split(' ')[1]);
  }

  async function leaseRow(): Promise<{ holder: string; expires_at: number } | undefined> {
    const { client } = await openDatabase(db);
    try {
      const r = await client.execute("SELECT holder, expires_at FROM leases WHERE name = 'singletons'");
      return r.rows[0] as unknown as { holder: string; expires_at: number } | undefined;
    } finally {
      client.close();
    }
  }

  /** The one plane holding the lease, once exactly one says so and the table names its pid. */
  async function holderOf(all: Plane[]): Promise<Plane> {
    return waitFor('exactly one control plane to hold the lease', async () => {
      const held = [];
      for (const p of all) if ((await gauge(p, 'berth_cp_lease_held')) === 1) held.push(p);
      const row = await leaseRow();
      return held.length === 1 && row?.holder.split(':')[1] === String(held[0].svc.pid) ? held[0] : undefined;
    }, { timeoutMs: 30_000, intervalMs: 200, describe: async () => JSON.stringify(await leaseRow()) });
  }

  async function etag(base: string, g: SimGateway): Promise<string> {
    const r = await call(base, 'GET', '/v1/device/desired', { token: g.token });
    expect(r.status).toBe(200);
    return r.headers.get('etag') as string;
  }

  beforeAll(async () => {
    image = (await forgeImage(rigFromEnv().registry, `berth-test/shared-db-${process.pid}`, 'v1', { layers: [{ files: { 'v.txt': 'shared\n' } }] })).tagReference;
    // One after the other: the first start migrates and bootstraps; the second finds it done.
    const a = await start('cp-a');
    await start('cp-b');
    await publish(a.url, ADMIN, 'app', '1.0.0', image);
    await publish(a.url, ADMIN, 'app', '2.0.0', image);
    await publish(a.url, ADMIN, 'app', '3.0.0', image);
    await enrollFleet(a.url, ADMIN, gws, () => 'site=shared');
    for (const g of gws) expect((await call(a.url, 'POST', `/v1/devices/${g.serial}/assign`, { token: ADMIN, json: { manifest: 'app@1.0.0' } })).status).toBe(200);
  }, 300_000);

  afterAll(async () => {
    for (const p of [...planes]) await p.svc.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('wakes a long poll on one for a change made through the other, and only the changed device', async () => {
    const [a, b] = planes;
    const [changed, untouched] = gws;
    const rounds: [Plane, Plane, string][] = [
      [b, a, 'app@2.0.0'],
      [a, b, 'app@3.0.0'],
    ];
    for (const [waitOn, changeOn, release] of rounds) {
      const before = await etag(waitOn.url, changed);
      const beforeOther = await etag(waitOn.url, untouched);
      // Each poll waits up to 60 s; an answer within 20 s can only come from the change feed.
      const poll = call(waitOn.url, 'GET', '/v1/device/desired?wait=60', { token: changed.token, headers: { 'if-none-match': before }, signal: AbortSignal.timeout(20_000) });
      const other = call(waitOn.url, 'GET', '/v1/device/desired?wait=60', { token: untouched.token, headers: { 'if-none-match': beforeOther }, signal: AbortSignal.timeout(20_000) });
      await waitFor(`both polls waiting on ${waitOn.name}`, async () => ((await gauge(waitOn, 'berth_cp_desired_long_polls')) === 2 ? true : undefined), { timeoutMs: 10_000, intervalMs: 50 });
      const assigned = await call(changeOn.url, 'POST', `/v1/devices/${changed.serial}/assign`, { token: ADMIN, json: { manifest: release } });
      expect(assigned.status, JSON.stringify(assigned.body)).toBe(200);
      const got = await poll;
      expect(got.status).toBe(200);
      expect(got.headers.get('etag')).toBe(`"${Number(JSON.parse(before)) + 1}"`);
      // The other device's poll is still waiting: nothing about it changed.
      expect(await gauge(waitOn, 'berth_cp_desired_long_polls')).toBe(1);
      // Its own change, through the other plane, ends it the same way.
      expect((await call(changeOn.url, 'POST', `/v1/devices/${untouched.serial}/assign`, { token: ADMIN, json: { manifest: release } })).status).toBe(200);
      const got2 = await other;
      expect(got2.status).toBe(200);
      expect(got2.headers.get('etag')).toBe(`"${Number(JSON.parse(beforeOther)) + 1}"`);
    }
  });

  it('lets exactly one of them drive campaigns, and a campaign made through the other completes', async () => {
    const holder = await holderOf(planes);
    const other = planes.find((p) => p !== holder) as Plane;
    await waitFor('the holder to tick its campaign scheduler', async () => ((await gauge(holder, 'berth_cp_campaign_ticks')) >= 3 ? true : undefined), { timeoutMs: 30_000 });
    expect(await gauge(other, 'berth_cp_lease_held')).toBe(0);
    expect(await gauge(other, 'berth_cp_campaign_ticks')).toBe(0);

    // Created, reported on and read through the plane that does not drive: the holder moves it.
    const created = await call(other.url, 'POST', '/v1/campaigns', { token: ADMIN, json: { manifest: 'app@3.0.0', selector: 'site=shared', waves: ['1', '100%'], success: 1, soak: '0', start: true } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.id as string;
    const status = () => call(other.url, 'GET', `/v1/campaigns/${id}`, { token: ADMIN });
    await waitFor('the campaign to complete', async () => {
      for (const g of gws) await g.runDesired(other.url);
      return (await status()).body.status === 'completed' ? true : undefined;
    }, { timeoutMs: 60_000, intervalMs: 300, describe: async () => JSON.stringify((await status()).body) });
    expect(await gauge(other, 'berth_cp_campaign_ticks')).toBe(0);
  });

  it('hands the lease to the survivor when its holder is killed with -9', async () => {
    const holder = await holderOf(planes);
    const survivor = planes.find((p) => p !== holder) as Plane;
    expect(await gauge(survivor, 'berth_cp_lease_held')).toBe(0);
    await kill9(holder);
    expect(await holderOf([survivor])).toBe(survivor);
    await waitFor('the survivor to drive campaigns', async () => ((await gauge(survivor, 'berth_cp_campaign_ticks')) > 0 ? true : undefined), { timeoutMs: 30_000 });
  });

  it('keeps every report acknowledged with 202 when the server is killed with -9 right after', async () => {
    const [server] = planes;
    const g = gws[2];
    const before = (await call(server.url, 'GET', `/v1/devices/${g.serial}/history?limit=1000`, { token: ADMIN })).body.reports.length as number;
    const sent: string[] = [];
    // Back to back, the kill right after the last 202: nothing is given time to settle.
    for (let i = 0; i < 20; i++) {
      const error = `report ${i} of the crash run`;
      await g.report(server.url, { phase: 'failed', error });
      sent.push(error);
    }
    await kill9(server);
    const restarted = await start('cp-c');
    const history = await call(restarted.url, 'GET', `/v1/devices/${g.serial}/history?limit=1000`, { token: ADMIN });
    const errors = (history.body.reports as { error?: string }[]).map((r) => r.error);
    for (const e of sent) expect(errors).toContain(e);
    expect(errors.length).toBe(Math.min(50, before + sent.length));
  });

  it('refuses a device token of a key revoked through the other control plane, and signs with the new key', async () => {
    const [c] = planes;
    const d = await start('cp-d');
    const g = gws[0];
    const kid = jwtHeader(g.token).kid as string;
    // Verified once on d, so the token is in d's cache too.
    expect((await call(d.url, 'GET', '/v1/device/desired', { token: g.token })).status).toBe(200);
    const revoked = await call(c.url, 'POST', `/v1/keys/${kid}/revoke`, { token: ADMIN });
    expect(revoked.status, JSON.stringify(revoked.body)).toBe(200);
    expect((await call(c.url, 'GET', '/v1/device/desired', { token: g.token })).status).toBe(401);
    await waitFor('the other control plane to refuse the revoked key', async () => ((await call(d.url, 'GET', '/v1/device/desired', { token: g.token })).status === 401 ? true : undefined), { timeoutMs: 15_000, intervalMs: 200 });
    await g.enroll(c.url);
    const doc = await call(d.url, 'GET', '/v1/device/desired', { token: g.token });
    expect(doc.status).toBe(200);
    expect(jwtHeader(doc.body.document as string).kid).toBe(revoked.body.active);
  });
});
