import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Campaign } from '../../cli/client.js';
import { rigFromEnv } from '../rig/index.js';
import { Fleet, forgeDemoImages, waitFor, writeDemoManifest, type DemoImages } from './fleet.js';

/**
 * The services as an operator runs them: `berth control-plane`, `berth registry-proxy` and
 * `berth edge-daemon` as child processes of the built CLI (dist/, as `npm test` builds it), with
 * their flags, the admin token in the environment, and logs in files. The in-process e2e test
 * covers the story; this one covers the commands and a daemon restart adopting its containers.
 */
const rig = rigFromEnv();
const BERTH = fileURLToPath(new URL('../../dist/bin/berth.js', import.meta.url));
const SERIALS = ['px-1', 'px-2'];
let fleet: Fleet;
let images: DemoImages;
let dir: string;

beforeAll(async () => {
  if (!existsSync(BERTH)) throw new Error(`${BERTH} is missing: run \`npm run build\` first (npm test does)`);
  dir = await mkdtemp(join(tmpdir(), 'berth-e2e-px-'));
  images = await forgeDemoImages(rig.registry);
  fleet = await Fleet.start({
    engine: rig,
    dir,
    gateways: SERIALS.map((serial) => ({ serial, labels: { ring: 'px' } })),
    processes: { node: process.execPath, berth: BERTH },
  });
});

afterAll(async () => {
  await fleet?.stop({ removeDir: true });
});

describe('end to end with every service as its own berth process', { timeout: 120_000 }, () => {
  it('the berth commands start the services; the gateways enroll and run the release', async () => {
    const services = fleet.services();
    expect(services.map((s) => s.name)).toEqual(['control-plane', 'registry-proxy']);
    for (const s of services) expect(s.pid).toBeGreaterThan(0);
    expect(services[0].command).not.toContain(fleet.adminToken);

    expect((await fleet.cli(['devices', 'import', fleet.recordsFile])).code).toBe(0);
    for (const serial of SERIALS) expect((await fleet.startGateway(serial)).deviceId).toMatch(/^dev_/);
    expect((await fleet.cli(['apply', '-f', await writeDemoManifest(dir, rig.registry, '1.0.0')])).code).toBe(0);
    const c = await fleet.cliJson<Campaign>(['campaign', 'create', '--manifest', 'demo@1.0.0', '--selector', 'ring=px', '--waves', '1,100%', '--start']);
    expect((await fleet.waitForCampaign(c.id, ['completed', 'failed', 'aborted'])).status).toBe('completed');
    await fleet.waitForRelease(SERIALS, 'demo@1.0.0');
    for (const serial of SERIALS) {
      const running = Object.fromEntries((await fleet.containers(serial)).map((x) => [x.service, x.imageId]));
      expect(running).toEqual({ app: images.v1.configDigest, agent: images.agent.configDigest });
    }
  });

  it('a daemon process stopped and started again adopts its running containers untouched', async () => {
    const serial = SERIALS[0];
    const before = await fleet.containers(serial);
    const pid = fleet.gateway(serial).daemon?.pid;
    await fleet.stopGateway(serial);
    const g = await fleet.startGateway(serial);
    expect(g.daemon?.pid).not.toBe(pid);
    // It reports again (a fresh sighting after the restart) and still runs the same containers.
    const restartedAt = Date.now();
    await waitFor(`${serial} to report after its restart`, async () => {
      const t = await fleet.twin(serial);
      return t.inSync && t.reported?.receivedAt && Date.parse(t.reported.receivedAt) >= restartedAt - 1000 ? t : undefined;
    }, { timeoutMs: 60_000 });
    const after = await fleet.containers(serial);
    expect(after.map((x) => [x.name, x.imageId, x.state])).toEqual(before.map((x) => [x.name, x.imageId, 'running']));
  });
});
