import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Campaign } from '../../cli/client.js';
import { rigFromEnv } from '../rig/index.js';
import { execIn } from './engine-probe.js';
import { DEMO_REPOSITORY, envObject, Fleet, forgeDemoImages, waitFor } from './fleet.js';

/**
 * Issue 13's "done when": one manifest with two variables and one secret rolled out by a campaign to
 * two gateways that get different values by label. Real edge daemons (their secrets on a tmpfs mounted
 * here), the real control plane and registry proxy, the rig's dockerd: inside each container
 * /run/secrets/db_password holds that gateway's value, and the plaintext is nowhere else: not in
 * the control plane's database files, not in any log, not in a daemon's state dir, not in the
 * documents as served. A rollout to a device that lacks the secret is refused up front.
 */
const rig = rigFromEnv();
const GATEWAYS = [
  { serial: 'sec-ber', labels: { site: 'berlin', app: 'sec' } },
  { serial: 'sec-par', labels: { site: 'paris', app: 'sec' } },
  { serial: 'sec-lon', labels: { site: 'london', app: 'sec-lacking' } },
];
const ROTATED = `paris-rotated-${randomBytes(12).toString('hex')}`;
const VALUES = { berlin: `berlin-${randomBytes(12).toString('hex')}`, paris: `paris-${randomBytes(12).toString('hex')}` };
let fleet: Fleet;
let dir: string;
let tmpfs: string;

const manifest = (registry: string) => `name: vault-sites
version: 1.0.0
services:
  app:
    image: ${registry}/${DEMO_REPOSITORY}:1.0.0
    network_mode: none
    restart: unless-stopped
    environment: { SITE_ID: "\${SITE_ID}", BROKER_URL: "mqtt://\${BROKER_HOST}:1883" }
    secrets: [db_password]
    healthcheck: { test: ["CMD-SHELL", "test -s /tmp/ready"], interval: 1s, timeout: 10s, retries: 2, start_period: 0s }
secrets: { db_password: {} }
x-berth: { update: { strategy: download-then-swap, health_timeout: 20s } }
`;

const runningApp = (serial: string) => fleet.inspectRunning(serial, 'app');

async function readSecretIn(serial: string): Promise<string> {
  return (await execIn(fleet.docker, (await runningApp(serial)).Id, ['cat', '/run/secrets/db_password'])).out;
}

const appId = async (serial: string) => (await runningApp(serial)).Id;

async function envOf(serial: string): Promise<Record<string, string>> {
  return envObject((await runningApp(serial)).Config.Env);
}

/** Every file under a directory, recursively (the fleet dir holds the database, the logs, the state dirs). */
async function filesUnder(root: string): Promise<string[]> {
  return (await readdir(root, { withFileTypes: true, recursive: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-secrets-e2e-'));
  tmpfs = await mkdtemp(join(tmpdir(), 'berth-secrets-e2e-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', tmpfs]);
  await forgeDemoImages(rig.registry);
  fleet = await Fleet.start({ engine: rig, dir, gateways: GATEWAYS, secretsDir: tmpfs });
  expect(await fleet.cliJson(['devices', 'import', fleet.recordsFile])).toMatchObject({ total: 3 });
  for (const g of GATEWAYS) await fleet.startGateway(g.serial);
});

afterAll(async () => {
  await fleet?.stop({ removeDir: true });
  if (tmpfs) execFileSync('umount', ['-l', tmpfs]);
});

describe('secrets end to end: two gateways, values by label, inside the real containers', { timeout: 180_000 }, () => {
  it('refuses up front a rollout to a gateway that lacks the secret, naming it', async () => {
    const file = join(dir, 'vault-sites.yaml');
    await writeFile(file, manifest(rig.registry));
    const applied = await fleet.cli(['apply', '-f', file]);
    expect(applied.code, applied.stderr).toBe(0);
    // London has its variables: what it lacks is the secret alone.
    expect((await fleet.cli(['vars', 'set', 'SITE_ID=london', 'BROKER_HOST=broker.london.example.com', '--selector', 'site=london'])).code).toBe(0);
    const refused = await fleet.cli(['campaign', 'create', '--manifest', 'vault-sites@1.0.0', '--selector', 'app=sec-lacking', '--waves', '100%']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('sec-lon: secret db_password (no value');
  });

  it('rolls out one manifest with each gateway\'s own value at /run/secrets/db_password', async () => {
    for (const site of ['berlin', 'paris'] as const) {
      const f = join(dir, `${site}.secret`);
      await writeFile(f, VALUES[site], { mode: 0o600 });
      const set = await fleet.cli(['secrets', 'set', 'db_password', '--selector', `site=${site}`, '--from-file', f]);
      expect(set.code, set.stderr).toBe(0);
    }
    for (const site of ['berlin', 'paris']) {
      const set = await fleet.cli(['vars', 'set', `SITE_ID=${site}`, `BROKER_HOST=broker.${site}.example.com`, '--selector', `site=${site}`]);
      expect(set.code, set.stderr).toBe(0);
    }
    const c = await fleet.cliJson<Campaign>(['campaign', 'create', '--manifest', 'vault-sites@1.0.0', '--selector', 'app=sec', '--waves', '100%', '--device-timeout', '2m', '--start']);
    const done = await fleet.waitForCampaign(c.id, ['completed', 'failed', 'paused', 'aborted']);
    expect(done.status, JSON.stringify(done)).toBe('completed');
    await fleet.waitForRelease(['sec-ber', 'sec-par'], 'vault-sites@1.0.0');
    expect(await readSecretIn('sec-ber')).toBe(VALUES.berlin);
    expect(await readSecretIn('sec-par')).toBe(VALUES.paris);
    expect(await envOf('sec-ber')).toMatchObject({ SITE_ID: 'berlin', BROKER_URL: 'mqtt://broker.berlin.example.com:1883' });
    expect(await envOf('sec-par')).toMatchObject({ SITE_ID: 'paris', BROKER_URL: 'mqtt://broker.paris.example.com:1883' });
  });

  it('a rotation reaches no gateway by itself; --reconfigure recreates only the rotated gateway\'s container', async () => {
    const before = { ber: await appId('sec-ber'), par: await appId('sec-par'), seq: (await fleet.twin('sec-par')).desired?.sequence };
    const f = join(dir, 'paris-2.secret');
    await writeFile(f, ROTATED, { mode: 0o600 });
    expect((await fleet.cli(['secrets', 'set', 'db_password', '--selector', 'site=paris', '--from-file', f])).code).toBe(0);
    expect((await fleet.twin('sec-par')).desired?.sequence).toBe(before.seq);
    expect(await readSecretIn('sec-par')).toBe(VALUES.paris);
    const c = await fleet.cliJson<Campaign>(['campaign', 'create', '--manifest', 'vault-sites@1.0.0', '--selector', 'app=sec', '--waves', '100%', '--device-timeout', '2m', '--reconfigure', '--start']);
    expect(Object.values(c.devices).reduce((a, b) => a + b, 0)).toBe(1);
    expect((await fleet.waitForCampaign(c.id, ['completed', 'failed', 'paused', 'aborted'])).status).toBe('completed');
    const rotated = await waitFor('sec-par to run the rotated secret', async () => ((await readSecretIn('sec-par').catch(() => '')) === ROTATED ? true : undefined), { timeoutMs: 60_000 });
    expect(rotated).toBe(true);
    expect(await appId('sec-par')).not.toBe(before.par);
    expect(await appId('sec-ber')).toBe(before.ber);
    expect(await readSecretIn('sec-ber')).toBe(VALUES.berlin);
  });

  it('leaves the plaintext nowhere else: database files, logs, state dirs, the served documents', async () => {
    // The secret files written by hand above are the only other copies, outside the fleet's dirs.
    const files = (await filesUnder(dir)).filter((f) => !f.endsWith('.secret'));
    expect(files.some((f) => f.endsWith('berth.db-wal'))).toBe(true);
    expect(files.some((f) => f.endsWith('.log'))).toBe(true);
    expect(files.some((f) => f.endsWith('release.json'))).toBe(true);
    for (const f of files) {
      // The daemons keep running and write their state atomically (temp file, rename): a temp file
      // listed above may be gone; its bytes are under the final name, which is read too.
      const bytes = await readFile(f).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' && f.endsWith('.tmp')) return null;
        throw err;
      });
      if (bytes === null) continue;
      for (const v of [...Object.values(VALUES), ROTATED]) {
        expect(bytes.includes(v), `${f} holds a secret in clear`).toBe(false);
        expect(bytes.includes(Buffer.from(v).toString('base64')), `${f} holds a secret in base64`).toBe(false);
      }
    }
    for (const serial of ['sec-ber', 'sec-par']) {
      // The document exactly as the control plane serves it to the gateway, with the gateway's own token.
      const creds = JSON.parse(await readFile(join(fleet.gateway(serial).stateDir, 'credentials.json'), 'utf8')) as { token: string };
      const res = await fetch(`${fleet.controlPlaneUrl}/v1/device/desired`, { headers: { authorization: `Bearer ${creds.token}` } });
      expect(res.status).toBe(200);
      const jws = ((await res.json()) as { document: string }).document;
      const payload = Buffer.from(jws.split('.')[1], 'base64url').toString('utf8');
      expect(JSON.parse(payload).secrets.db_password.jwe.split('.')).toHaveLength(5);
      for (const v of Object.values(VALUES)) {
        expect(jws).not.toContain(v);
        expect(payload).not.toContain(v);
        expect(payload).not.toContain(Buffer.from(v).toString('base64'));
      }
    }
  });
});
