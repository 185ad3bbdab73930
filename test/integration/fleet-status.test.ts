import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { forgeImage } from '../rig/forge.js';
import { rigFromEnv } from '../rig/index.js';
import { call } from './control-plane-support.js';
import { runCaptured } from './cli-support.js';
import { enrollFleet, publish, SimGateway } from './sim-gateway.js';

/** `GET /v1/fleet/status`, `berth fleet status` and the fleet gauges of /metrics against a real control plane and simulated gateways. */
const ADMIN = 'berth_' + randomBytes(32).toString('base64url');
let dir: string;
let cp: RunningControlPlane;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-fleet-status-'));
  const image = (await forgeImage(rigFromEnv().registry, 'berth-test/fleet-status', 'v1', { layers: [{ files: { 'v.txt': 'fleet\n' } }] })).tagReference;
  cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'cp.db')}`, dataDir: dir, adminToken: ADMIN, log: createLogger('control-plane', { level: 'warn' }), config: { lastSeenFlushMs: 100 } });
  await publish(cp.url, ADMIN, 'app', '1.0.0', image);
});

afterAll(async () => {
  await cp?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('fleet status', () => {
  it('counts devices by online, sync state and phase, campaigns by status, and lists recent failures', async () => {
    const [inSync, downloading, rolledBack, silent, unassigned] = ['fs-1', 'fs-2', 'fs-3', 'fs-4', 'fs-5'].map((s) => new SimGateway(s));
    await enrollFleet(cp.url, ADMIN, [inSync, downloading, rolledBack, silent, unassigned], (g) => (g === unassigned ? 'role=spare' : 'role=edge'));
    for (const g of [inSync, downloading, rolledBack, silent]) expect((await call(cp.url, 'POST', `/v1/devices/${g.serial}/assign`, { token: ADMIN, json: { manifest: 'app@1.0.0' } })).status).toBe(200);
    expect(await inSync.runDesired(cp.url)).toBe('app@1.0.0');
    await downloading.downloading(cp.url, 1000, 4000);
    await rolledBack.rollBack(cp.url, 'none', 'web: unhealthy after 60s');
    const draft = await call(cp.url, 'POST', '/v1/campaigns', { token: ADMIN, json: { manifest: 'app@1.0.0', selector: 'role=spare', name: 'spares' } });
    expect(draft.status).toBe(201);

    const deadline = Date.now() + 30_000;
    let status = (await call(cp.url, 'GET', '/v1/fleet/status', { token: ADMIN })).body;
    // Sightings reach the table in batches (every 100 ms here).
    while (status.devices.online < 3 && Date.now() < deadline) status = (await call(cp.url, 'GET', '/v1/fleet/status', { token: ADMIN })).body;
    expect(status.devices).toEqual({
      total: 5,
      online: 3,
      offline: 2,
      sync: { 'in-sync': 1, updating: 2, failed: 1, drifting: 0, unassigned: 1 },
      phases: { running: 1, downloading: 1, 'rolled-back': 1, none: 2 },
    });
    expect(status.campaigns.byStatus).toMatchObject({ draft: 1, running: 0, completed: 0 });
    expect(status.campaigns.active.map((c: any) => [c.name, c.status, c.waves.length])).toEqual([['spares', 'draft', 1]]);
    expect(status.recentFailures).toEqual([expect.objectContaining({ serial: 'fs-3', phase: 'rolled-back', error: 'web: unhealthy after 60s' })]);

    const metrics = (await call(cp.url, 'GET', '/metrics')).body as string;
    expect(metrics).toContain('berth_cp_fleet_online{online="true"} 3');
    expect(metrics).toContain('berth_cp_fleet_sync{state="in-sync"} 1');
    expect(metrics).toContain('berth_cp_fleet_sync{state="updating"} 2');
    expect(metrics).toContain('berth_cp_fleet_phase{phase="rolled-back"} 1');
    expect(metrics).toContain('berth_cp_campaigns{status="draft"} 1');

    const env = { HOME: dir, XDG_CONFIG_HOME: join(dir, 'cfg'), BERTH_SERVER: cp.url, BERTH_TOKEN: ADMIN };
    const text = await runCaptured(['fleet', 'status'], env);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('5 enrolled: 3 online, 2 offline');
    expect(text.stdout).toContain('1 in sync, 2 updating, 1 failed, 0 drifting, 1 unassigned');
    expect(text.stdout).toMatch(/fs-3\s+rolled-back/);
    const json = await runCaptured(['fleet', 'status', '-o', 'json'], env);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout).devices).toEqual(status.devices);
  });
});
