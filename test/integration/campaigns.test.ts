import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { rigFromEnv } from '../rig/index.js';
import { forgeImage } from '../rig/forge.js';
import { call } from './control-plane-support.js';
import { enrollFleet, SimGateway } from './sim-gateway.js';
import { waitFor } from './wait.js';

/**
 * Campaigns over real HTTP and a real libSQL file: the control plane runs in-process, devices are
 * simulated (real Ed25519 keys, real enrollment, desired-state fetches, reports).
 */

const ADMIN = 'berth_' + randomBytes(32).toString('base64url');
let dir: string;
let images: { v1: string; v2: string };
const running: RunningControlPlane[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-campaigns-'));
  const rig = rigFromEnv();
  const v1 = await forgeImage(rig.registry, 'berth-test/campaign-app', 'v1', { layers: [{ files: { 'release.txt': 'v1\n' } }] });
  const v2 = await forgeImage(rig.registry, 'berth-test/campaign-app', 'v2', { layers: [{ files: { 'release.txt': 'v2\n' } }] });
  images = { v1: v1.tagReference, v2: v2.tagReference };
});

afterEach(async () => {
  for (const cp of running.splice(0)) await cp.close();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function start(db: string): Promise<RunningControlPlane> {
  const cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${db}`, dataDir: dir, adminToken: ADMIN, log: createLogger('control-plane', { level: 'warn' }) });
  running.push(cp);
  return cp;
}

async function freshControlPlane(name: string): Promise<{ cp: RunningControlPlane; db: string }> {
  const db = join(dir, `${name}.db`);
  const cp = await start(db);
  for (const [version, image] of [['1.0.0', images.v1], ['2.0.0', images.v2]] as const) {
    const r = await call(cp.url, 'POST', '/v1/manifests', { token: ADMIN, text: `name: app\nversion: ${version}\nservices:\n  web:\n    image: ${image}\n`, type: 'application/yaml' });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
  }
  return { cp, db };
}

/** Simulated gateways (sim-gateway.ts): enrolled through the real routes, they fetch their document and report. */
type Gateway = SimGateway;

async function fleet(base: string, prefix: string, n: number, labels: string): Promise<Gateway[]> {
  const gateways = Array.from({ length: n }, (_, i) => new SimGateway(`${prefix}-${String(i + 1).padStart(3, '0')}`));
  await importAndEnroll(base, gateways, labels);
  return gateways;
}

function importAndEnroll(base: string, gateways: Gateway[], labels: string): Promise<void> {
  return enrollFleet(base, ADMIN, gateways, () => labels);
}

/** Puts every gateway on app@1.0.0 (running), so campaigns have something to roll back to. */
async function baseline(base: string, gateways: Gateway[]): Promise<void> {
  for (const g of gateways) {
    const r = await call(base, 'POST', `/v1/devices/${g.serial}/assign`, { token: ADMIN, json: { manifest: 'app@1.0.0' } });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(await g.mustRun(base)).toBe('app@1.0.0');
  }
}

async function campaign(base: string, id: string): Promise<any> {
  const r = await call(base, 'GET', `/v1/campaigns/${id}`, { token: ADMIN });
  expect(r.status).toBe(200);
  return r.body;
}

/** Polls the campaign status until `predicate` holds (progress is asynchronous: events and ticks). */
function until(base: string, id: string, what: string, predicate: (c: any) => boolean, timeoutMs = 30_000): Promise<any> {
  return waitFor(`campaign ${id}: ${what}`, async () => {
    const c = await campaign(base, id);
    return predicate(c) ? c : undefined;
  }, { timeoutMs, intervalMs: 100, describe: async () => `last status ${JSON.stringify(await campaign(base, id))}` });
}

async function releasesOf(base: string, gateways: Gateway[]): Promise<(string | null)[]> {
  return Promise.all(gateways.map(async (g) => (await g.desired(base))?.release ?? null));
}

async function create(base: string, body: Record<string, unknown>): Promise<any> {
  const r = await call(base, 'POST', '/v1/campaigns', { token: ADMIN, json: body });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body;
}

/** The gateways whose desired release is `release` now (which devices a wave picks is the control plane's choice). */
async function on(base: string, gateways: Gateway[], release: string): Promise<Gateway[]> {
  const releases = await releasesOf(base, gateways);
  return gateways.filter((_, i) => releases[i] === release);
}

const countOf = (releases: (string | null)[], release: string) => releases.filter((r) => r === release).length;

describe('campaigns', () => {
  it('advances wave by wave as devices report the release healthy, then completes', async () => {
    const { cp } = await freshControlPlane('waves');
    const gws = await fleet(cp.url, 'waves', 4, 'site=berlin;tier=prod');
    const other = await fleet(cp.url, 'waves-canary', 1, 'site=berlin;tier=canary');
    await baseline(cp.url, [...gws, ...other]);

    const c = await create(cp.url, { manifest: 'app@2.0.0', selector: 'site=berlin,tier!=canary', waves: ['1', '50%', '100%'], success: 1, maxFailures: 0, deviceTimeout: '10m', soak: '1s', start: true });
    expect(c.status).toBe('running');
    expect(c.devices).toMatchObject({ assigned: 1, pending: 3 });
    expect(c.waves.map((w: any) => w.cumulativeDevices)).toEqual([1, 2, 4]);
    expect(countOf(await releasesOf(cp.url, gws), 'app@2.0.0')).toBe(1);

    // Each wave: the devices given 2.0.0 run it healthy; the next wave follows after the soak.
    for (const [wave, total] of [[2, 2], [3, 4]] as const) {
      for (const g of gws) if ((await g.desired(cp.url))?.release === 'app@2.0.0') await g.mustRun(cp.url);
      await until(cp.url, c.id, `wave ${wave}`, (s) => s.currentWave === wave && s.devices.assigned + s.devices.succeeded === total);
      expect(countOf(await releasesOf(cp.url, gws), 'app@2.0.0')).toBe(total);
    }
    for (const g of gws) await g.mustRun(cp.url);
    const done = await until(cp.url, c.id, 'completion', (s) => s.status === 'completed');
    expect(done.devices).toMatchObject({ succeeded: 4, pending: 0, failed: 0 });
    expect(done.waves.map((w: any) => w.devices.succeeded)).toEqual([1, 1, 2]);
    // The selector left the canary-tier device out.
    expect(await other[0].desired(cp.url)).toMatchObject({ release: 'app@1.0.0' });

    const list = await call(cp.url, 'GET', '/v1/campaigns', { token: ADMIN });
    expect(list.body.campaigns.map((x: any) => [x.id, x.status])).toEqual([[c.id, 'completed']]);
  });

  it('aborts and rolls back when a device fails, sending every touched device to its previous manifest', async () => {
    const { cp } = await freshControlPlane('rollback');
    const gws = await fleet(cp.url, 'rb', 4, 'site=paris');
    await baseline(cp.url, gws);
    const before = await Promise.all(gws.map((g) => g.desired(cp.url)));

    const c = await create(cp.url, { manifest: 'app@2.0.0', selector: 'site=paris', waves: ['1', '100%'], success: 1, maxFailures: 0, onFailure: 'rollback', start: true });
    const [canary] = await on(cp.url, gws, 'app@2.0.0');
    await canary.mustRun(cp.url);
    await until(cp.url, c.id, 'wave 2', (s) => s.currentWave === 2 && s.devices.assigned === 3);

    const [bad, ...rest] = gws.filter((g) => g !== canary);
    await rest[0].mustRun(cp.url);
    await bad.rollBack(cp.url, 'app@1.0.0', 'service web unhealthy: exit code 1');
    const failed = await until(cp.url, c.id, 'failure', (s) => s.status === 'failed');
    expect(failed.statusReason).toMatch(/wave 2/);
    expect(failed.failing).toEqual([expect.objectContaining({ serial: bad.serial, wave: 2, error: 'service web unhealthy: exit code 1' })]);
    expect(failed.devices['rolled-back']).toBe(4);
    // The status still reads against the whole fleet of 4 after the rollback.
    expect(failed.waves.map((w: { cumulativeDevices: number }) => w.cumulativeDevices)).toEqual([1, 4]);

    const after = await Promise.all(gws.map((g) => g.desired(cp.url)));
    after.forEach((d, i) => {
      expect(d?.release).toBe('app@1.0.0');
      // Back to the old release with a higher sequence, which the device accepts as newer.
      expect(d?.sequence).toBe((before[i]?.sequence ?? 0) + 2);
    });
    const audit = await call(cp.url, 'GET', '/v1/audit', { token: ADMIN });
    expect(JSON.stringify(audit.body)).toContain('campaign.rollback');
  });

  it('pauses and resumes; an operator abort rolls back', async () => {
    const { cp } = await freshControlPlane('pause');
    const gws = await fleet(cp.url, 'pause', 3, 'site=rome');
    await baseline(cp.url, gws);
    const c = await create(cp.url, { manifest: 'app@2.0.0', selector: 'site=rome', waves: ['1', '100%'], success: 1, start: true });
    const paused = await call(cp.url, 'POST', `/v1/campaigns/${c.id}/pause`, { token: ADMIN });
    expect(paused.status).toBe(200);
    expect(paused.body.status).toBe('paused');
    expect((await call(cp.url, 'POST', `/v1/campaigns/${c.id}/pause`, { token: ADMIN })).status).toBe(409);

    const [canary] = await on(cp.url, gws, 'app@2.0.0');
    await canary.mustRun(cp.url);
    const waiting = await until(cp.url, c.id, 'the canary success', (s) => s.devices.succeeded === 1);
    // Paused: the success is recorded but the next wave is not assigned.
    expect(waiting.status).toBe('paused');
    expect(waiting.devices.pending).toBe(2);
    expect(countOf(await releasesOf(cp.url, gws), 'app@2.0.0')).toBe(1);

    const resumed = await call(cp.url, 'POST', `/v1/campaigns/${c.id}/resume`, { token: ADMIN });
    expect(resumed.body.status).toBe('running');
    expect(resumed.body.devices).toMatchObject({ succeeded: 1, assigned: 2, pending: 0 });
    expect(countOf(await releasesOf(cp.url, gws), 'app@2.0.0')).toBe(3);

    const aborted = await call(cp.url, 'POST', `/v1/campaigns/${c.id}/abort`, { token: ADMIN });
    expect(aborted.body.status).toBe('aborted');
    expect(await releasesOf(cp.url, gws)).toEqual(['app@1.0.0', 'app@1.0.0', 'app@1.0.0']);
    expect((await call(cp.url, 'POST', `/v1/campaigns/${c.id}/resume`, { token: ADMIN })).status).toBe(409);
  });

  it('assigns nothing while the maintenance window is closed; refuses overlapping campaigns unless they supersede', async () => {
    const { cp } = await freshControlPlane('window');
    const gws = await fleet(cp.url, 'win', 2, 'site=oslo');
    await baseline(cp.url, gws);
    const now = new Date();
    const closedHour = (now.getUTCHours() + 12) % 24;
    const closed = await create(cp.url, { manifest: 'app@2.0.0', selector: 'site=oslo', waves: ['100%'], window: { cron: `0 ${closedHour} * * *`, duration: '1h', tz: 'UTC' }, start: true });
    expect(closed.status).toBe('running');
    expect(closed.window.open).toBe(false);
    expect(closed.devices).toMatchObject({ pending: 2, assigned: 0 });
    // A tick later, still nothing.
    await sleep(1500);
    expect((await campaign(cp.url, closed.id)).devices).toMatchObject({ pending: 2, assigned: 0 });
    expect(await releasesOf(cp.url, gws)).toEqual(['app@1.0.0', 'app@1.0.0']);

    const opened = new Date(now.getTime() - 10 * 60_000);
    const body = { manifest: 'app@2.0.0', selector: 'site=oslo', waves: ['100%'], window: { cron: `${opened.getUTCMinutes()} ${opened.getUTCHours()} * * *`, duration: '2h', tz: 'UTC' }, start: true };
    const refused = await call(cp.url, 'POST', '/v1/campaigns', { token: ADMIN, json: body });
    expect(refused.status).toBe(409);
    expect(refused.body.total).toBe(2);
    expect(refused.body.conflicts.map((x: any) => [x.serial, x.campaignId]).sort()).toEqual(gws.map((g) => [g.serial, closed.id]));
    expect((await call(cp.url, 'GET', '/v1/campaigns', { token: ADMIN })).body.campaigns).toHaveLength(1);

    const open = await create(cp.url, { ...body, supersede: true });
    expect(open.window.open).toBe(true);
    expect(open.devices).toMatchObject({ assigned: 2, pending: 0 });
    expect(await releasesOf(cp.url, gws)).toEqual(['app@2.0.0', 'app@2.0.0']);
    const old = await campaign(cp.url, closed.id);
    expect(old.devices).toMatchObject({ left: 2, pending: 0 });
  });

  it('takes in devices that match after the start: newly enrolled and relabelled', async () => {
    const { cp } = await freshControlPlane('late');
    const gws = await fleet(cp.url, 'late', 2, 'site=lima');
    const outsider = (await fleet(cp.url, 'late-out', 1, 'site=quito'))[0];
    await baseline(cp.url, [...gws, outsider]);
    const c = await create(cp.url, { manifest: 'app@2.0.0', selector: 'site=lima', waves: ['1', '100%'], success: 1, start: true });
    const [canary] = await on(cp.url, gws, 'app@2.0.0');
    await canary.mustRun(cp.url);
    await until(cp.url, c.id, 'wave 2', (s) => s.currentWave === 2);

    // Last wave (100%): a device enrolled now is assigned at once.
    const newcomer = new SimGateway('late-new-001');
    await importAndEnroll(cp.url, [newcomer], 'site=lima');
    await until(cp.url, c.id, 'the newcomer', (s) => s.devices.assigned === 2);
    expect((await newcomer.desired(cp.url))?.release).toBe('app@2.0.0');

    const relabel = await call(cp.url, 'PATCH', `/v1/devices/${outsider.serial}/labels`, { token: ADMIN, json: { set: { site: 'lima' } } });
    expect(relabel.status).toBe(200);
    await until(cp.url, c.id, 'the relabelled device', (s) => s.devices.assigned === 3);
    expect((await outsider.desired(cp.url))?.release).toBe('app@2.0.0');

    for (const g of [...gws.filter((g) => g !== canary), newcomer, outsider]) await g.mustRun(cp.url);
    const done = await until(cp.url, c.id, 'completion', (s) => s.status === 'completed');
    expect(done.devices).toMatchObject({ succeeded: 4 });
  });

  it('members: devices enrolled before any campaign, during a draft, and after one finished; a relabelled one leaves the draft', async () => {
    const { cp } = await freshControlPlane('drafted');
    // With no campaign in the database the scheduler reads nothing per enrolled device (issue 17).
    const early = await fleet(cp.url, 'drafted-early', 2, 'site=oslo');
    const c = await create(cp.url, { manifest: 'app@2.0.0', selector: 'site=oslo', waves: ['100%'] });
    expect(c.status).toBe('draft');
    expect(c.devices.pending).toBe(2);
    const during = await fleet(cp.url, 'drafted-during', 1, 'site=oslo');
    await until(cp.url, c.id, 'the device enrolled during the draft', (s) => s.devices.pending === 3);
    const moved = await call(cp.url, 'PATCH', `/v1/devices/${early[0].serial}/labels`, { token: ADMIN, json: { set: { site: 'bergen' } } });
    expect(moved.status).toBe(200);
    await until(cp.url, c.id, 'the relabelled device gone', (s) => s.devices.pending === 2 && s.devices.left === 1);
    expect((await call(cp.url, 'POST', `/v1/campaigns/${c.id}/abort`, { token: ADMIN })).status).toBe(200);
    // Aborted: it holds no device, and one enrolled now joins nothing.
    const late = await fleet(cp.url, 'drafted-late', 1, 'site=oslo');
    const again = await create(cp.url, { manifest: 'app@2.0.0', selector: 'site=oslo', waves: ['100%'] });
    expect(again.devices.pending).toBe(3);
    expect([...early, ...during, ...late]).toHaveLength(4);
  });

  it('counts a silent device as timed out (a failure) after the device timeout and pauses; resume goes on, abort rolls back', async () => {
    const { cp } = await freshControlPlane('timeout');
    const gws = await fleet(cp.url, 'to', 3, 'site=bern');
    await baseline(cp.url, gws);
    const c = await create(cp.url, { manifest: 'app@2.0.0', selector: 'site=bern', waves: ['1', '100%'], success: 1, maxFailures: 0, deviceTimeout: '1s', onFailure: 'pause', start: true });
    const [silent] = await on(cp.url, gws, 'app@2.0.0');
    const paused = await until(cp.url, c.id, 'the timeout', (s) => s.status === 'paused');
    expect(paused.failing).toEqual([expect.objectContaining({ serial: silent.serial, wave: 1, state: 'failed', error: expect.stringMatching(/no successful report within 1s/) })]);
    // A timeout is counted apart from the failures devices report, in the totals and in its wave.
    expect(paused.devices).toMatchObject({ failed: 0, 'timed-out': 1, pending: 2 });
    expect(paused.waves[0].devices).toMatchObject({ failed: 0, 'timed-out': 1, assigned: 0 });
    // Pausing leaves the release in place: nothing is rolled back.
    expect((await silent.desired(cp.url))?.release).toBe('app@2.0.0');

    // Resuming acknowledges the failure: the next wave goes out at once.
    const resumed = await call(cp.url, 'POST', `/v1/campaigns/${c.id}/resume`, { token: ADMIN });
    expect(resumed.body.devices).toMatchObject({ failed: 0, 'timed-out': 1, assigned: 2, pending: 0 });
    expect(countOf(await releasesOf(cp.url, gws), 'app@2.0.0')).toBe(3);
    // Whether the 1s timeout paused it again meanwhile or not, an abort sends everyone back.
    const aborted = await call(cp.url, 'POST', `/v1/campaigns/${c.id}/abort`, { token: ADMIN });
    expect(aborted.body.status).toBe('aborted');
    expect(await releasesOf(cp.url, gws)).toEqual(['app@1.0.0', 'app@1.0.0', 'app@1.0.0']);
  });

  it('continues correctly after a restart of the control plane mid-campaign', async () => {
    const { cp, db } = await freshControlPlane('restart');
    const gws = await fleet(cp.url, 'rs', 3, 'site=kyiv');
    await baseline(cp.url, gws);
    const c = await create(cp.url, { manifest: 'app@2.0.0', selector: 'site=kyiv', waves: ['1', '100%'], success: 1, soak: '3s', start: true });
    const [canary] = await on(cp.url, gws, 'app@2.0.0');
    await canary.mustRun(cp.url);
    const soaking = await until(cp.url, c.id, 'the soak', (s) => s.soakUntil !== null || s.currentWave === 2);
    expect(soaking.devices).toMatchObject({ succeeded: 1 });
    await cp.close();
    running.splice(running.indexOf(cp), 1);

    const again = await start(db);
    // The soak, the wave and the devices' outcomes all come back from the database.
    await until(again.url, c.id, 'wave 2 after the restart', (s) => s.currentWave === 2 && s.devices.assigned === 2);
    for (const g of gws.filter((g) => g !== canary)) await g.mustRun(again.url);
    const done = await until(again.url, c.id, 'completion', (s) => s.status === 'completed');
    expect(done.devices).toMatchObject({ succeeded: 3, failed: 0 });
  });

  it('validates the request and names the field', async () => {
    const { cp } = await freshControlPlane('validate');
    const cases: [Record<string, unknown>, number, string][] = [
      [{ manifest: 'app@9.9.9' }, 404, 'manifest'],
      [{ manifest: 'app' }, 400, 'manifest'],
      [{ manifest: 'app@2.0.0', selector: 'site in (a' }, 400, 'selector'],
      [{ manifest: 'app@2.0.0', waves: ['1', 'lots'] }, 400, 'waves[1]'],
      [{ manifest: 'app@2.0.0', success: 2 }, 400, 'success'],
      [{ manifest: 'app@2.0.0', deviceTimeout: 'soon' }, 400, 'deviceTimeout'],
      [{ manifest: 'app@2.0.0', window: { cron: 'every night', duration: '1h' } }, 400, 'window.cron'],
      [{ manifest: 'app@2.0.0', window: { cron: '0 2 * * *', duration: '1h', tz: 'Moon/Base' } }, 400, 'window.tz'],
      [{ manifest: 'app@2.0.0', onFailure: 'panic' }, 400, 'onFailure'],
    ];
    for (const [body, status, field] of cases) {
      const r = await call(cp.url, 'POST', '/v1/campaigns', { token: ADMIN, json: body });
      expect([r.status, r.body.error?.field], JSON.stringify(body)).toEqual([status, field]);
    }
    expect((await call(cp.url, 'GET', '/v1/campaigns/nope', { token: ADMIN })).status).toBe(404);
    expect((await call(cp.url, 'POST', '/v1/campaigns', { json: { manifest: 'app@2.0.0' } })).status).toBe(401);
  });
});
