import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry, Campaign } from '../../cli/client.js';
import { rigFromEnv } from '../rig/index.js';
import { Fleet, forgeDemoImages, waitFor, writeDemoManifest, type DemoImages, type GatewayContainer } from './fleet.js';

/**
 * The whole loop, as `npm run demo` tells it, with assertions: a real Docker engine shared by three
 * gateways (real edge daemons), the real registry proxy in front of the rig's registry, the real
 * control plane on a libSQL file, driven through the operator CLI. Then what goes wrong in the
 * field: a device revoked mid-campaign, a gateway offline during its wave, the control plane
 * restarted mid-campaign. The steps build on each other, in order.
 */
const rig = rigFromEnv();
const SERIALS = ['gw-1', 'gw-2', 'gw-3'];
let fleet: Fleet;
let images: DemoImages;
let dir: string;

function createCampaign(manifest: string, waves: string, extra: string[] = []): Promise<Campaign> {
  return fleet.cliJson<Campaign>(['campaign', 'create', '--manifest', manifest, '--selector', 'site=berlin', '--waves', waves, '--device-timeout', '2m', ...extra, '--start']);
}

/** What each gateway runs: service → image id, with every container running. */
async function running(serial: string): Promise<Record<string, string>> {
  const list = await fleet.containers(serial);
  const out: Record<string, string> = {};
  for (const c of list) {
    if (c.state === 'running') out[c.service] = c.imageId;
  }
  return out;
}

async function appContainer(serial: string): Promise<GatewayContainer | undefined> {
  return (await fleet.containers(serial)).find((c) => c.service === 'app' && c.state === 'running');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-e2e-'));
  images = await forgeDemoImages(rig.registry);
  fleet = await Fleet.start({
    engine: rig,
    dir,
    gateways: SERIALS.map((serial) => ({ serial, labels: { site: 'berlin' } })),
    offlineAfterMs: 12_000,
  });
});

afterAll(async () => {
  const kept = process.env.BERTH_E2E_KEEP === '1';
  await fleet?.stop({ removeDir: !kept });
  if (kept) console.log(`[e2e] kept ${dir} (logs in ${fleet.logFile})`);
});

describe('end to end: three gateways, one engine, the real services', { timeout: 180_000 }, () => {
  it('imports the manufacturing records and enrolls the three gateways', async () => {
    expect(await fleet.cliJson(['devices', 'import', fleet.recordsFile])).toEqual({ total: 3, created: 3, updated: 0, unchanged: 0 });
    for (const serial of SERIALS) await fleet.startGateway(serial);
    const devices = await waitFor('three enrolled, online devices', async () => {
      const list = await fleet.devices();
      return list.length === 3 && list.every((d) => d.status === 'enrolled' && d.online) ? list : undefined;
    }, { timeoutMs: 30_000 });
    expect(devices.map((d) => d.serial)).toEqual(SERIALS);
    expect(devices.map((d) => d.id)).toEqual(SERIALS.map((s) => fleet.gateway(s).deviceId));
  });

  it('publishes v1 and rolls it out: every gateway runs the pinned images, twins in sync', async () => {
    const published = await fleet.cli(['apply', '-f', await writeDemoManifest(dir, rig.registry, '1.0.0')]);
    expect(published.code).toBe(0);
    expect(published.stdout).toContain(`@${images.v1.manifestDigest}`);
    const c = await createCampaign('demo@1.0.0', '100%');
    expect(c.status).toBe('running');
    const done = await fleet.waitForCampaign(c.id, ['completed', 'failed', 'aborted']);
    expect(done.status).toBe('completed');
    expect(done.devices).toMatchObject({ succeeded: 3, failed: 0 });
    await fleet.waitForRelease(SERIALS, 'demo@1.0.0');
    for (const serial of SERIALS) {
      expect(await running(serial)).toEqual({ app: images.v1.configDigest, agent: images.agent.configDigest });
      const twin = await fleet.twin(serial);
      expect(twin).toMatchObject({ inSync: true, drift: [], desired: { release: 'demo@1.0.0', campaign: c.id }, reported: { running: 'demo@1.0.0', phase: 'running' } });
      expect(twin.services.app).toMatchObject({ status: 'running', health: 'healthy', drift: 'in-sync' });
    }
    const audit = await fleet.cliJson<AuditEntry[]>(['audit']);
    expect(audit.map((e) => `${e.action} ${e.target}`)).toEqual(expect.arrayContaining(['device.import 3 records', 'manifest.publish demo@1.0.0', `campaign.create ${c.id}`, `campaign.start ${c.id}`, `campaign.complete ${c.id}`]));
  });

  it('rolls v2 out in waves (1, 2, 3 devices); only the app is replaced, the agent keeps running', async () => {
    const agentsBefore = await Promise.all(SERIALS.map(async (s) => (await fleet.containers(s)).find((c) => c.service === 'agent')?.name));
    await fleet.cli(['apply', '-f', await writeDemoManifest(dir, rig.registry, '2.0.0')]);
    const c = await createCampaign('demo@2.0.0', '1,2,3');
    expect(c.waves.map((w) => w.size)).toEqual([1, 1, 1]);
    // The watch exits 0 when the campaign completes; its plain lines show the waves filling up.
    const watch = await fleet.cli(['campaign', 'status', c.id, '--watch', '--interval', '200ms']);
    expect(watch.stderr).toBe('');
    expect(watch.code).toBe(0);
    const lines = watch.stdout.split('\n');
    expect(lines.at(-1)).toMatch(/campaign \S+ completed: w1 1\/1, w2 1\/1, w3 1\/1$/);
    await fleet.waitForRelease(SERIALS, 'demo@2.0.0');
    for (const [i, serial] of SERIALS.entries()) {
      expect(await running(serial)).toEqual({ app: images.v2.configDigest, agent: images.agent.configDigest });
      expect((await fleet.containers(serial)).find((c) => c.service === 'agent')?.name).toBe(agentsBefore[i]);
    }
  });

  it('v3 fails its health check in the first wave: the campaign aborts and rolls back, nobody else gets v3', async () => {
    await fleet.cli(['apply', '-f', await writeDemoManifest(dir, rig.registry, '3.0.0', { healthTimeout: '8s' })]);
    const c = await createCampaign('demo@3.0.0', '1,100%', ['--max-failures', '0%', '--on-failure', 'rollback']);
    const watch = await fleet.cli(['campaign', 'status', c.id, '--watch', '--interval', '250ms']);
    expect(watch.code).toBe(1);
    expect(watch.stderr).toMatch(/ended (failed|aborted)/);
    const end = await fleet.campaign(c.id);
    expect(['failed', 'aborted']).toContain(end.status);
    expect(end.failing).toHaveLength(1);
    const victim = end.failing[0].serial;
    expect(end.failing[0].wave).toBe(1);
    expect(end.failing[0].error).toMatch(/health|unhealthy/i);
    expect(end.waves[1].counts.assigned ?? 0).toBe(0);
    expect(end.waves[1].counts.succeeded ?? 0).toBe(0);

    // The victim rolled back by itself, then the campaign sent it back to v2 too.
    await fleet.waitForRelease(SERIALS, 'demo@2.0.0');
    for (const serial of SERIALS) expect(await running(serial)).toEqual({ app: images.v2.configDigest, agent: images.agent.configDigest });
    const twin = await fleet.twin(victim);
    expect(twin.desired?.release).toBe('demo@2.0.0');
    const audit = await fleet.cliJson<AuditEntry[]>(['audit']);
    // `berth audit` lists the newest first: reversed, the trail reads in order.
    const trail = audit.filter((e) => e.target === c.id).map((e) => e.action).reverse();
    expect(trail.slice(0, 2)).toEqual(['campaign.create', 'campaign.start']);
    expect(trail).toContain('campaign.rollback');
  });

  it('a device revoked mid-campaign leaves it and keeps its release; the others complete', async () => {
    await fleet.cli(['apply', '-f', await writeDemoManifest(dir, rig.registry, '2.1.0', { app: '2.0.0', greeting: 'hello again' })]);
    const c = await createCampaign('demo@2.1.0', '1,100%', ['--soak', '20s']);
    // Wave 1 passes, then the campaign soaks: the other two are still waiting.
    const soaking = await waitFor('wave 1 to pass and soak', async () => {
      const s = await fleet.campaign(c.id);
      return s.soakUntil !== null && (s.waves[0].counts.succeeded ?? 0) === 1 ? s : undefined;
    }, { timeoutMs: 60_000 });
    expect(soaking.devices.pending).toBe(2);
    const first = (await Promise.all(SERIALS.map(async (s) => ((await fleet.twin(s)).desired?.release === 'demo@2.1.0' ? s : null)))).find(Boolean)!;
    const revoked = SERIALS.find((s) => s !== first)!;
    const before = await appContainer(revoked);

    const r = await fleet.cli(['devices', 'revoke', revoked, '--yes']);
    expect(r).toMatchObject({ code: 0, stdout: `${revoked}: revoked` });
    const done = await fleet.waitForCampaign(c.id, ['completed', 'failed', 'aborted'], 90_000);
    expect(done.status).toBe('completed');
    expect(done.devices).toMatchObject({ succeeded: 2, failed: 0, left: 1 });
    const others = SERIALS.filter((s) => s !== revoked);
    await fleet.waitForRelease(others, 'demo@2.1.0');

    // The revoked gateway keeps running what it had: same container, v2's image.
    expect((await appContainer(revoked))?.name).toBe(before?.name);
    expect(await running(revoked)).toEqual({ app: images.v2.configDigest, agent: images.agent.configDigest });
    expect((await fleet.twin(revoked)).device.status).toBe('revoked');
    expect((await fleet.cliJson<AuditEntry[]>(['audit'])).some((e) => e.action === 'device.revoke' && e.target === revoked)).toBe(true);
    await fleet.stopGateway(revoked);
  });

  it('a gateway offline during its wave catches up when it comes back', async () => {
    const live = SERIALS.filter((s) => fleet.gateway(s).daemon !== null);
    expect(live).toHaveLength(2);
    const [online, offline] = live;
    await fleet.stopGateway(offline);
    await waitFor(`${offline} to show offline`, async () => ((await fleet.twin(offline)).device.online === false ? true : undefined), { timeoutMs: 30_000 });

    await fleet.cli(['apply', '-f', await writeDemoManifest(dir, rig.registry, '2.2.0', { app: '2.0.0', greeting: 'offline test' })]);
    const c = await createCampaign('demo@2.2.0', '100%');
    await fleet.waitForRelease([online], 'demo@2.2.0');
    const midway = await fleet.campaign(c.id);
    expect(midway.status).toBe('running');
    expect(midway.devices).toMatchObject({ succeeded: 1, assigned: 1 });
    const stale = await fleet.twin(offline);
    expect(stale.desired?.release).toBe('demo@2.2.0');
    expect(stale.reported?.running).toBe('demo@2.1.0');
    expect(stale.drift[0]).toBe('release: desired demo@2.2.0, running demo@2.1.0');

    await fleet.startGateway(offline);
    const done = await fleet.waitForCampaign(c.id, ['completed', 'failed', 'aborted']);
    expect(done.status).toBe('completed');
    await fleet.waitForRelease(live, 'demo@2.2.0');
    expect((await fleet.twin(offline)).device.online).toBe(true);
  });

  it('the control plane restarted mid-campaign (same database) finishes the campaign', async () => {
    const live = SERIALS.filter((s) => fleet.gateway(s).daemon !== null);
    await fleet.cli(['apply', '-f', await writeDemoManifest(dir, rig.registry, '2.3.0', { app: '2.0.0', greeting: 'after a restart' })]);
    const c = await createCampaign('demo@2.3.0', '1,100%', ['--soak', '3s']);
    const before = await waitFor('wave 1 to pass', async () => {
      const s = await fleet.campaign(c.id);
      return (s.waves[0].counts.succeeded ?? 0) === 1 ? s : undefined;
    }, { timeoutMs: 60_000 });
    expect(before.status).toBe('running');
    expect(before.devices.pending).toBe(1);

    // A release manager's watch outlives the restart: it waits the control plane out.
    const watching = fleet.cli(['campaign', 'status', c.id, '--watch', '--interval', '200ms']);
    await fleet.restartControlPlane();
    const done = await fleet.waitForCampaign(c.id, ['completed', 'failed', 'aborted']);
    expect(done.status).toBe('completed');
    const watch = await watching;
    expect(watch.code).toBe(0);
    expect(watch.stdout.split('\n').at(-1)).toMatch(/completed: w1 1\/1, w2 1\/1$/);
    expect(done.devices).toMatchObject({ succeeded: 2, failed: 0 });
    await fleet.waitForRelease(live, 'demo@2.3.0');
    for (const serial of live) expect((await running(serial)).app).toBe(images.v2.configDigest);
    const campaigns = await fleet.cliJson<Campaign[]>(['campaign', 'list']);
    expect(campaigns.map((x) => x.status).filter((s) => s === 'running' || s === 'paused')).toEqual([]);
  });
});
