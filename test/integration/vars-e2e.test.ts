import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Campaign } from '../../cli/client.js';
import { rigFromEnv } from '../rig/index.js';
import { DEMO_REPOSITORY, envObject, Fleet, forgeDemoImages, waitFor } from './fleet.js';

/**
 * Issue 13's variables end to end: one manifest using two variables (and a default, and `$$`)
 * rolled out to two gateways that get different values by label. Real edge daemons, the real
 * control plane and registry proxy, the rig's dockerd: inside each container the environment holds
 * that gateway's values. A value changed later changes no gateway until `--reconfigure`, which
 * takes only the gateway whose values changed.
 */
const rig = rigFromEnv();
const GATEWAYS = [
  { serial: 'vars-ber', labels: { site: 'berlin', app: 'vars' } },
  { serial: 'vars-par', labels: { site: 'paris', app: 'vars' } },
];
let fleet: Fleet;
let dir: string;

const manifest = (registry: string) => `name: sites
version: 1.0.0
services:
  app:
    image: ${registry}/${DEMO_REPOSITORY}:1.0.0
    network_mode: none
    restart: unless-stopped
    environment:
      SITE_ID: "\${SITE_ID}"
      BROKER_URL: "mqtt://\${BROKER_HOST}:1883"
      LOG_LEVEL: "\${LOG_LEVEL:-info}"
      PRICE: "$$5"
    healthcheck: { test: ["CMD-SHELL", "test -s /tmp/ready"], interval: 1s, timeout: 10s, retries: 2, start_period: 0s }
x-berth: { update: { strategy: download-then-swap, health_timeout: 20s } }
`;

/** The running app container's environment on a gateway, from the engine, and its id. */
async function appEnv(serial: string): Promise<{ id: string; env: Record<string, string> }> {
  const info = await fleet.inspectRunning(serial, 'app');
  return { id: info.Id, env: envObject(info.Config.Env) };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-vars-e2e-'));
  await forgeDemoImages(rig.registry);
  fleet = await Fleet.start({ engine: rig, dir, gateways: GATEWAYS });
  expect(await fleet.cliJson(['devices', 'import', fleet.recordsFile])).toMatchObject({ total: 2 });
  for (const g of GATEWAYS) await fleet.startGateway(g.serial);
});

afterAll(async () => {
  await fleet?.stop({ removeDir: true });
});

describe('variables end to end: two gateways, values by label, inside the real containers', { timeout: 180_000 }, () => {
  it('rolls out one manifest with each gateway\'s values in its container\'s environment', async () => {
    for (const [site, broker] of [['berlin', 'broker.berlin.example.com'], ['paris', 'broker.paris.example.com']]) {
      const set = await fleet.cli(['vars', 'set', `SITE_ID=${site}`, `BROKER_HOST=${broker}`, '--selector', `site=${site}`]);
      expect(set.code, set.stderr).toBe(0);
    }
    const file = join(dir, 'sites.yaml');
    await writeFile(file, manifest(rig.registry));
    const applied = await fleet.cli(['apply', '-f', file]);
    expect(applied.code, applied.stderr).toBe(0);
    const c = await fleet.cliJson<Campaign>(['campaign', 'create', '--manifest', 'sites@1.0.0', '--selector', 'app=vars', '--waves', '100%', '--device-timeout', '2m', '--start']);
    const done = await fleet.waitForCampaign(c.id, ['completed', 'failed', 'paused', 'aborted']);
    expect(done.status, JSON.stringify(done)).toBe('completed');
    await fleet.waitForRelease(GATEWAYS.map((g) => g.serial), 'sites@1.0.0');

    expect((await appEnv('vars-ber')).env).toMatchObject({ SITE_ID: 'berlin', BROKER_URL: 'mqtt://broker.berlin.example.com:1883', LOG_LEVEL: 'info', PRICE: '$5' });
    expect((await appEnv('vars-par')).env).toMatchObject({ SITE_ID: 'paris', BROKER_URL: 'mqtt://broker.paris.example.com:1883', LOG_LEVEL: 'info', PRICE: '$5' });
  });

  it('a changed value reaches no gateway by itself; --reconfigure gives only the affected one a new document', async () => {
    const before = { ber: await appEnv('vars-ber'), par: await appEnv('vars-par') };
    const seqBefore = { ber: (await fleet.twin('vars-ber')).desired?.sequence, par: (await fleet.twin('vars-par')).desired?.sequence };
    expect((await fleet.cli(['vars', 'set', 'BROKER_HOST=broker2.paris.example.com', '--selector', 'site=paris'])).code).toBe(0);
    expect((await fleet.twin('vars-par')).desired?.sequence).toBe(seqBefore.par);

    const c = await fleet.cliJson<Campaign>(['campaign', 'create', '--manifest', 'sites@1.0.0', '--selector', 'app=vars', '--waves', '100%', '--device-timeout', '2m', '--reconfigure', '--start']);
    expect(Object.values(c.devices).reduce((a, b) => a + b, 0)).toBe(1);
    expect((await fleet.waitForCampaign(c.id, ['completed', 'failed', 'paused', 'aborted'])).status).toBe('completed');
    const par = await waitFor('vars-par to run the new broker', async () => {
      const e = await appEnv('vars-par').catch(() => undefined);
      return e?.env.BROKER_URL === 'mqtt://broker2.paris.example.com:1883' ? e : undefined;
    }, { timeoutMs: 60_000 });
    expect(par.env.SITE_ID).toBe('paris');
    expect(par.id).not.toBe(before.par.id);
    expect((await fleet.twin('vars-par')).desired?.sequence).toBe((seqBefore.par ?? 0) + 1);
    // Berlin's values did not change: same document, same container.
    expect((await fleet.twin('vars-ber')).desired?.sequence).toBe(seqBefore.ber);
    expect((await appEnv('vars-ber')).id).toBe(before.ber.id);

    const nothing = await fleet.cli(['campaign', 'create', '--manifest', 'sites@1.0.0', '--selector', 'app=vars', '--waves', '100%', '--reconfigure']);
    expect(nothing.code).not.toBe(0);
    expect(nothing.stderr).toContain('no device matching the selector runs sites@1.0.0 with values that changed (2 unchanged, 0 on another release)');
  });
});
