import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { verifySignature } from '../../control-plane/webhooks/events.js';
import { webhookEvent } from '../../protocol/webhooks.js';
import { forgeImage } from '../rig/forge.js';
import { rigFromEnv } from '../rig/index.js';
import { call } from './control-plane-support.js';
import { runCaptured } from './cli-support.js';
import { enrollFleet, publish, Receiver, SimGateway } from './sim-gateway.js';

/**
 * Webhooks against a real control plane (libSQL file, real HTTP) and a receiver on loopback: the
 * events of a whole campaign arrive signed, in order, and a receiver that fails is retried.
 */
const ADMIN = 'berth_' + randomBytes(32).toString('base64url');
const SECRET = 'whsec-' + randomBytes(16).toString('hex');
let dir: string;
let cp: RunningControlPlane;
let image: string;
const receiver = new Receiver();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-webhooks-'));
  image = (await forgeImage(rigFromEnv().registry, 'berth-test/webhook-app', 'v1', { layers: [{ files: { 'v.txt': '1\n' } }] })).tagReference;
  await receiver.start();
  cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'cp.db')}`, dataDir: dir, adminToken: ADMIN, log: createLogger('control-plane', { level: 'warn' }), config: { offlineAfterMs: 2000, lastSeenFlushMs: 200 } });
});

afterAll(async () => {
  await cp?.close();
  await receiver.close();
  await rm(dir, { recursive: true, force: true });
});

function cli(args: string[]) {
  return runCaptured(args, { HOME: dir, XDG_CONFIG_HOME: join(dir, 'cfg'), BERTH_SERVER: cp.url, BERTH_TOKEN: ADMIN });
}

describe('webhooks', () => {
  it('refuses bad input with the field named, and a viewer', async () => {
    const bad = await call(cp.url, 'POST', '/v1/webhooks', { token: ADMIN, json: { url: 'ftp://x.example.com/', events: ['campaign.*'] } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.field).toBe('url');
    const badEvent = await call(cp.url, 'POST', '/v1/webhooks', { token: ADMIN, json: { url: receiver.url, events: ['campaign.exploded'] } });
    expect(badEvent.status).toBe(400);
    expect(badEvent.body.error.message).toContain('matches no event type');
    const creds = await call(cp.url, 'POST', '/v1/webhooks', { token: ADMIN, json: { url: 'http://u:p@127.0.0.1/', events: ['*'] } });
    expect(creds.status).toBe(400);
    const viewer = await call(cp.url, 'POST', '/v1/tokens', { token: ADMIN, json: { name: 'v', role: 'viewer' } });
    expect((await call(cp.url, 'GET', '/v1/webhooks', { token: viewer.body.token })).status).toBe(403);
    expect((await call(cp.url, 'GET', '/v1/webhooks', { token: ADMIN })).body.webhooks).toEqual([]);
  });

  it('delivers a campaign’s events signed and in order, retries a failing receiver, and shows the history', async () => {
    const secretFile = join(dir, 'hook.secret');
    await writeFile(secretFile, SECRET + '\n', { mode: 0o600 });
    const added = await cli(['webhooks', 'add', receiver.url, '--events', 'campaign.*,device.*,manifest.published', '--secret-from-file', secretFile, '-o', 'json']);
    expect(added.code, added.stderr).toBe(0);
    const hook = JSON.parse(added.stdout);
    expect(hook).toMatchObject({ url: receiver.url, events: ['campaign.*', 'device.*', 'manifest.published'], secret: null });
    expect(added.stdout + added.stderr).not.toContain(SECRET);
    const audit = await call(cp.url, 'GET', '/v1/audit', { token: ADMIN });
    expect(JSON.stringify(audit.body)).not.toContain(SECRET);
    expect(audit.body.entries.map((e: any) => e.action)).toContain('webhook.create');

    // The receiver fails the first two attempts: the first event is retried, the others wait behind it.
    receiver.failNext = 2;
    await publish(cp.url, ADMIN, 'app', '1.0.0', image);
    const gws = [new SimGateway('wh-001'), new SimGateway('wh-002')];
    await enrollFleet(cp.url, ADMIN, gws, () => 'site=hooks');
    const created = await call(cp.url, 'POST', '/v1/campaigns', { token: ADMIN, json: { manifest: 'app@1.0.0', selector: 'site=hooks', waves: ['1', '100%'], success: 1, maxFailures: 0, soak: '0', start: true } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    for (let round = 0; round < 2; round++) {
      await receiver.until(`wave ${round + 1}`, (r) => r.unique().filter((x) => x.event.type === 'campaign.wave_started').length > round);
      for (const g of gws) await g.runDesired(cp.url);
    }
    await receiver.until('campaign.completed', (r) => r.types().includes('campaign.completed'));

    const events = receiver.unique();
    const completed = events.find((r) => r.event.type === 'campaign.completed') as (typeof events)[number];
    expect(verifySignature(SECRET, completed.body, completed.headers['x-berth-signature'] as string)).toBe(true);
    expect(verifySignature('another-secret-entirely', completed.body, completed.headers['x-berth-signature'] as string)).toBe(false);
    expect(completed.headers['content-type']).toContain('application/cloudevents+json');
    expect(webhookEvent.parse(completed.event)).toMatchObject({ specversion: '1.0', subject: `campaigns/${created.body.id}`, data: { campaignId: created.body.id, manifest: 'app@1.0.0', status: 'completed' } });
    for (const r of events) expect(verifySignature(SECRET, r.body, r.headers['x-berth-signature'] as string), r.event.type).toBe(true);

    // In the order the changes committed; the failed attempts held the later events back.
    // Presence events depend on timing (2 s offline threshold; a loaded machine can go past it between polls).
    const order = events.map((r) => r.event.type).filter((t) => t !== 'device.online' && t !== 'device.offline');
    expect(order).toEqual(['manifest.published', 'device.enrolled', 'device.enrolled', 'campaign.created', 'campaign.started', 'campaign.wave_started', 'campaign.wave_started', 'campaign.completed']);
    expect(events.map((r) => r.event.subject)).toContain('manifests/app@1.0.0');

    const shown = await cli(['webhooks', 'show', hook.id, '-o', 'json']);
    const detail = JSON.parse(shown.stdout);
    const first = detail.deliveries[detail.deliveries.length - 1];
    expect(first).toMatchObject({ type: 'manifest.published', state: 'delivered', attempts: 3, lastStatus: 204 });
    expect(detail.failed).toBe(0);
    const table = await cli(['webhooks', 'show', hook.id]);
    expect(table.stdout).toContain('campaign.completed');
  });

  it('announces a device going offline and coming back, a rollback, and a test event', async () => {
    const hooks = (await call(cp.url, 'GET', '/v1/webhooks', { token: ADMIN })).body.webhooks;
    const id = hooks[0].id as string;
    const gw = new SimGateway('wh-late');
    await enrollFleet(cp.url, ADMIN, [gw], () => 'site=elsewhere');
    await gw.runDesired(cp.url);
    const subject = `devices/${gw.serial}`;
    await receiver.until('online', (r) => r.unique().some((x) => x.event.type === 'device.online' && x.event.subject === subject));
    // Silent for longer than offlineAfter (2 s): offline, once.
    await receiver.until('offline', (r) => r.unique().some((x) => x.event.type === 'device.offline' && x.event.subject === subject));
    const assign = await call(cp.url, 'POST', `/v1/devices/${gw.serial}/assign`, { token: ADMIN, json: { manifest: 'app@1.0.0' } });
    expect(assign.status).toBe(200);
    await gw.rollBack(cp.url, 'none', 'health check failed');
    await gw.rollBack(cp.url, 'none', 'health check failed');
    await receiver.until('rolled back', (r) => r.unique().some((x) => x.event.type === 'device.rolled_back'));
    const mine = () => receiver.unique().filter((x) => x.event.subject === subject).map((x) => x.event.type);
    await receiver.until('back online', () => mine().filter((t) => t === 'device.online').length === 2);
    expect(mine().filter((t) => t === 'device.rolled_back')).toHaveLength(1);
    expect(receiver.unique().find((x) => x.event.type === 'device.rolled_back')?.event.data).toMatchObject({ serial: gw.serial, error: 'health check failed' });

    const tested = await cli(['webhooks', 'test', id]);
    expect(tested.code, tested.stderr).toBe(0);
    await receiver.until('test event', (r) => r.types().includes('webhook.test'));

    const removed = await cli(['webhooks', 'rm', id, '--yes']);
    expect(removed.code).toBe(0);
    expect((await call(cp.url, 'GET', `/v1/webhooks/${id}`, { token: ADMIN })).status).toBe(404);
    const actions = (await call(cp.url, 'GET', '/v1/audit', { token: ADMIN })).body.entries.map((e: any) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['webhook.create', 'webhook.test', 'webhook.delete']));
  });
});
