import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifySignature } from '../../control-plane/webhooks/events.js';
import { forgeImage } from '../rig/forge.js';
import { freePort, rigFromEnv } from '../rig/index.js';
import { call } from './control-plane-support.js';
import { startControlPlaneChild, type ChildService } from './fleet-process.js';
import { waitFor } from './wait.js';
import { enrollFleet, publish, Receiver, SimGateway } from './sim-gateway.js';

const ADMIN = 'berth_' + randomBytes(32).toString('base64url');
const SECRET = 'crash-secret-' + randomBytes(12).toString('hex');

/**
 * The outbox survives kill -9: `berth control-plane` runs as a real child process and is killed
 * right after the campaign's create-and-start answer (its events committed, none sent yet: the
 * dispatcher looks every 500 ms) and again mid-campaign. After each restart the receiver gets
 * every event, and after deduplication by id exactly one of each.
 */
describe('webhooks across kill -9 of the control plane', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-wh-crash-'));
  const receiver = new Receiver();
  let port: number;
  let cp: { url: string; svc: ChildService } | undefined;

  async function startChild(): Promise<string> {
    cp = await startControlPlaneChild({ dir, port, adminToken: ADMIN });
    return cp.url;
  }

  async function kill9(): Promise<void> {
    expect((await cp!.svc.kill('SIGKILL')).signal).toBe('SIGKILL');
  }

  beforeAll(async () => {
    port = await freePort();
    await receiver.start();
  }, 300_000);

  afterAll(async () => {
    await cp?.svc.kill('SIGKILL');
    await receiver.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('delivers every event of a campaign once by id through two kills', async () => {
    const image = (await forgeImage(rigFromEnv().registry, 'berth-test/webhook-crash', 'v1', { layers: [{ files: { 'v.txt': 'crash\n' } }] })).tagReference;
    let url = await startChild();
    const hook = await call(url, 'POST', '/v1/webhooks', { token: ADMIN, json: { url: receiver.url, events: ['campaign.*', 'manifest.published'], secret: SECRET } });
    expect(hook.status, JSON.stringify(hook.body)).toBe(201);
    await publish(url, ADMIN, 'app', '1.0.0', image);
    const gws = [1, 2, 3].map((i) => new SimGateway(`crash-${i}`));
    await enrollFleet(url, ADMIN, gws, () => 'site=crash');

    const created = await call(url, 'POST', '/v1/campaigns', { token: ADMIN, json: { manifest: 'app@1.0.0', selector: 'site=crash', waves: ['1', '100%'], success: 1, soak: '0', start: true } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    await kill9();

    url = await startChild();
    await receiver.until('the wave 1 events', (r) => r.types().includes('campaign.wave_started'));
    for (const g of gws) await g.runDesired(url);
    // Wave 2 is assigned by the first device's success; kill while its events are fresh.
    await receiver.until('wave 2', (r) => r.types().filter((t) => t === 'campaign.wave_started').length === 2);
    await kill9();

    url = await startChild();
    for (const g of gws) await g.runDesired(url);
    await receiver.until('campaign.completed', (r) => r.types().includes('campaign.completed'));

    // The receiver has the last event before the dispatcher records its answer: wait for the record.
    const show = () => call(url, 'GET', `/v1/webhooks/${hook.body.id}`, { token: ADMIN });
    const detail = await waitFor('the dispatcher to record every answer', async () => {
      const d = await show();
      return d.body.pending === 0 ? d : undefined;
    }, { timeoutMs: 20_000, intervalMs: 200, describe: async () => JSON.stringify((await show()).body) });
    expect(detail.body).toMatchObject({ pending: 0, failed: 0 });
    const stored = detail.body.deliveries.map((d: { eventId: string }) => d.eventId).sort();
    const unique = receiver.unique();
    // Every event the outbox holds arrived, and nothing else did.
    expect(unique.map((r) => r.event.id).sort()).toEqual(stored);
    expect(unique.map((r) => r.event.type)).toEqual(['manifest.published', 'campaign.created', 'campaign.started', 'campaign.wave_started', 'campaign.wave_started', 'campaign.completed']);
    for (const r of receiver.received) expect(verifySignature(SECRET, r.body, r.headers['x-berth-signature'] as string)).toBe(true);
    await cp!.svc.stop();
  });
});
