import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../cli/index.js';
import { capturingIo, type CapturedIo } from './cli-support.js';
import { createLogger } from '../../common/log.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { verifyDeployment, type DeploymentDocument } from '../../protocol/deployment.js';
import { forgeImage } from '../rig/forge.js';
import { rigFromEnv } from '../rig/index.js';
import { call, csvOf, enroll, failingError, newDevice, type TestDevice } from './control-plane-support.js';

/**
 * Variables over real HTTP and a real libSQL file: set per selector, device and fleet; a rollout
 * refused up front when devices lack one or two selector values conflict; a variable refused in a
 * device path; the values snapshotted at assignment into the signed document, and never changed
 * on a device until it is assigned again.
 */

const ADMIN = 'berth_' + randomBytes(32).toString('base64url');
let dir: string;
let cp: RunningControlPlane;
let image = '';
let rmToken = '';
let viewer = '';
const enrolled = new Map<string, { deviceId: string; token: string; jwks: { keys: object[] } }>();
const devices: Record<string, TestDevice> = {};

const app = (version: string) => `name: app
version: ${version}
services:
  web:
    image: ${image}
    network_mode: none
    environment:
      SITE_ID: "\${SITE_ID}"
      BROKER: "\${BROKER:-mqtt://localhost:1883}"
    command: ["sh", "-c", "echo $$HOME \${SITE_ID:?ask the site team}"]
`;

function cliIo(token: string): CapturedIo {
  return capturingIo({ BERTH_SERVER: cp.url, BERTH_TOKEN: token }).io;
}

async function importDevice(serial: string, labels: string): Promise<void> {
  devices[serial] = newDevice(serial);
  const r = await call(cp.url, 'POST', '/v1/devices/import', { token: ADMIN, text: csvOf([devices[serial]], () => labels), type: 'text/csv' });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  enrolled.set(serial, await enroll(cp.url, devices[serial]));
}

/** The document a device is served, verified as the daemon verifies it. */
async function documentOf(serial: string): Promise<DeploymentDocument> {
  const e = enrolled.get(serial)!;
  const r = await call(cp.url, 'GET', '/v1/device/desired', { token: e.token });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return verifyDeployment(r.body.document, { keys: e.jwks as never, device: e.deviceId });
}

const put = (json: unknown, token = rmToken) => call(cp.url, 'PUT', '/v1/vars', { token, json });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-vars-'));
  image = (await forgeImage(rigFromEnv().registry, `berth-test/vars-app-${process.pid}`, 'v1', { layers: [{ files: { 'x.txt': 'x\n' } }] })).tagReference;
  cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'cp.db')}`, dataDir: dir, adminToken: ADMIN, log: createLogger('control-plane', { level: 'warn' }) });
  rmToken = (await call(cp.url, 'POST', '/v1/tokens', { token: ADMIN, json: { name: 'rm', role: 'release-manager' } })).body.token;
  viewer = (await call(cp.url, 'POST', '/v1/tokens', { token: ADMIN, json: { name: 'v', role: 'viewer' } })).body.token;
  await importDevice('BER-1', 'fleet=a;site=berlin');
  await importDevice('BER-2', 'fleet=a;site=berlin;tier=edge');
  await importDevice('PAR-1', 'fleet=a;site=paris');
  const pub = await call(cp.url, 'POST', '/v1/manifests', { token: rmToken, text: app('1.0.0'), type: 'application/yaml' });
  expect(pub.status, JSON.stringify(pub.body)).toBe(201);
});

afterAll(async () => {
  await cp?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('variables', () => {
  it('a rollout whose manifest needs a variable some devices lack is refused up front, naming them', async () => {
    expect((await put({ selector: 'site=berlin', values: { SITE_ID: 'berlin' } })).status).toBe(200);
    const r = await call(cp.url, 'POST', '/v1/campaigns', { token: rmToken, json: { manifest: 'app@1.0.0', selector: 'fleet=a' } });
    expect(r.status, JSON.stringify(r.body)).toBe(422);
    expect(r.body.error.code).toBe('variables-lacking');
    expect(r.body.error.message).toBe('the rollout of app@1.0.0 needs variables some target devices lack: 1 device lacks SITE_ID (not set and no default): PAR-1');
    expect(r.body.variables).toMatchObject({ devices: 3, ok: false, groups: [{ devices: 1, sample: ['PAR-1'], lacking: [{ name: 'SITE_ID' }] }] });
    expect(r.body.variables.needs.map((n: { name: string; required: boolean }) => `${n.name}:${n.required}`)).toEqual(['BROKER:false', 'SITE_ID:true']);
    const one = await call(cp.url, 'POST', '/v1/devices/PAR-1/assign', { token: rmToken, json: { manifest: 'app@1.0.0' } });
    expect(one.status).toBe(422);
    expect(one.body.error.message).toContain('1 device lacks SITE_ID (not set and no default): PAR-1');
    expect((await call(cp.url, 'GET', '/v1/campaigns', { token: rmToken })).body.campaigns).toEqual([]);
  });

  it('two selector values that both match a device and differ are a conflict, refused; a device value settles it', async () => {
    expect((await put({ selector: 'site=paris', values: { SITE_ID: 'paris' } })).status).toBe(200);
    expect((await put({ selector: 'tier=edge', values: { SITE_ID: 'edge' } })).status).toBe(200);
    const r = await call(cp.url, 'POST', '/v1/campaigns', { token: rmToken, json: { manifest: 'app@1.0.0', selector: 'fleet=a' } });
    expect(r.status).toBe(422);
    expect(r.body.error.message).toContain('1 device lacks SITE_ID (conflict: selector site=berlin and selector tier=edge give different values): BER-2');
    const eff = await call(cp.url, 'GET', '/v1/vars?device=BER-2', { token: viewer });
    expect(eff.body).toEqual({ device: 'BER-2', values: [], conflicts: [{ name: 'SITE_ID', candidates: [{ selector: 'site=berlin', value: 'berlin' }, { selector: 'tier=edge', value: 'edge' }] }] });
    expect((await put({ device: 'BER-2', values: { SITE_ID: 'berlin-edge' } })).status).toBe(200);
    const settled = await call(cp.url, 'GET', '/v1/vars?device=BER-2', { token: viewer });
    expect(settled.body.values).toEqual([{ name: 'SITE_ID', value: 'berlin-edge', source: 'device' }]);
  });

  it('refuses a variable in a device path at publish, naming the path', async () => {
    const text = app('1.1.0').replace('    network_mode: none\n', '    network_mode: none\n    devices: ["${ZIGBEE_PORT}:/dev/zigbee"]\n');
    const r = await call(cp.url, 'POST', '/v1/manifests', { token: rmToken, text, type: 'application/yaml' });
    expect(r.status).toBe(422);
    expect(JSON.stringify(r.body)).toContain('services.web.devices[0]: a $ is not allowed here (a variable may never widen privileges');
  });

  it('the signed document holds the device\'s values; changing a value changes no device until it is assigned again', async () => {
    expect((await put({ fleet: true, values: { BROKER: 'mqtt://broker.fleet:1883' } })).status).toBe(200);
    expect((await call(cp.url, 'POST', '/v1/devices/PAR-1/assign', { token: rmToken, json: { manifest: 'app@1.0.0' } })).body.sequence).toBe(1);
    const doc = await documentOf('PAR-1');
    expect(doc.spec.services.web.environment).toEqual({ SITE_ID: 'paris', BROKER: 'mqtt://broker.fleet:1883' });
    expect(doc.spec.services.web.command).toEqual(['sh', '-c', 'echo $HOME paris']);
    expect(doc.sequence).toBe(1);

    expect((await put({ selector: 'site=paris', values: { SITE_ID: 'paris-2' } })).status).toBe(200);
    const same = await documentOf('PAR-1');
    expect([same.sequence, same.spec.services.web.environment.SITE_ID]).toEqual([1, 'paris']);

    expect((await call(cp.url, 'POST', '/v1/devices/PAR-1/assign', { token: rmToken, json: { manifest: 'app@1.0.0' } })).body.sequence).toBe(2);
    const next = await documentOf('PAR-1');
    expect([next.sequence, next.spec.services.web.environment.SITE_ID]).toEqual([2, 'paris-2']);
    // Nothing changed since: the same manifest again is the same document.
    expect((await call(cp.url, 'POST', '/v1/devices/PAR-1/assign', { token: rmToken, json: { manifest: 'app@1.0.0' } })).body.sequence).toBe(2);
    // A rollback goes back to the values it ran before, as a newer document.
    expect((await call(cp.url, 'POST', '/v1/devices/PAR-1/rollback', { token: rmToken, json: {} })).body.sequence).toBe(3);
    const back = await documentOf('PAR-1');
    expect([back.sequence, back.spec.services.web.environment.SITE_ID]).toEqual([3, 'paris']);
  });

  it('a campaign snapshots each device\'s values; a device that joins late without one is skipped and reported', async () => {
    const created = await call(cp.url, 'POST', '/v1/campaigns', { token: rmToken, json: { manifest: 'app@1.0.0', selector: 'fleet=a', start: true } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect((await documentOf('BER-1')).spec.services.web.environment.SITE_ID).toBe('berlin');
    expect((await documentOf('BER-2')).spec.services.web.environment.SITE_ID).toBe('berlin-edge');
    await importDevice('ROM-1', 'fleet=a;site=rome');
    const id = created.body.id as string;
    expect(await failingError(cp.url, id, 'ROM-1', rmToken)).toBe('skipped, never deployed: device ROM-1 lacks SITE_ID (not set and no default)');
    expect((await call(cp.url, 'GET', '/v1/device/desired', { token: enrolled.get('ROM-1')!.token })).status).toBe(204);
  });

  it('writes are for release managers, audited with the values; viewers list; bad input names what and where', async () => {
    expect((await put({ fleet: true, values: { X: '1' } }, viewer)).status).toBe(403);
    const two = await put({ fleet: true, selector: 'a=b', values: { X: '1' } });
    expect([two.status, two.body.error.code]).toEqual([400, 'invalid-scope']);
    const badName = await put({ fleet: true, values: { '1X': '1' } });
    expect(badName.status).toBe(400);
    expect(badName.body.error.message).toBe('body field values.1X: "1X" is not a variable name: letters, digits and _, not starting with a digit, at most 128');
    expect((await put({ device: 'NOPE', values: { X: '1' } })).status).toBe(404);
    const list = await call(cp.url, 'GET', '/v1/vars', { token: viewer });
    expect(list.body.variables.map((v: { name: string; scope: string; target: string; value: string }) => `${v.name} ${v.scope} ${v.target}=${v.value}`)).toEqual([
      'BROKER fleet =mqtt://broker.fleet:1883',
      'SITE_ID device BER-2=berlin-edge',
      'SITE_ID selector site=berlin=berlin',
      'SITE_ID selector site=paris=paris-2',
      'SITE_ID selector tier=edge=edge',
    ]);
    const audit = await call(cp.url, 'GET', '/v1/audit', { token: ADMIN });
    const vars = audit.body.entries.filter((e: { action: string }) => e.action.startsWith('vars.'));
    expect(vars.map((e: { action: string; target: string }) => `${e.action} ${e.target}`)).toContain('vars.update SITE_ID@selector:site=paris');
  });

  it('a published manifest lists the variables it uses, with defaults and messages (API and CLI)', async () => {
    const show = await call(cp.url, 'GET', '/v1/manifests/app/1.0.0', { token: viewer });
    expect(show.body.variables).toEqual([
      { name: 'BROKER', required: false, default: 'mqtt://localhost:1883', paths: ['services.web.environment.BROKER'] },
      { name: 'SITE_ID', required: true, message: 'ask the site team', paths: ['services.web.environment.SITE_ID', 'services.web.command[2]'] },
    ]);
    expect(show.body.spec.services.web.command).toEqual(['sh', '-c', 'echo $$HOME ${SITE_ID:?ask the site team}']);
    const io = cliIo(viewer);
    expect(await run(['manifests', 'show', 'app@1.0.0'], io)).toBe(0);
    expect(io.stdout.join('\n')).toContain('variables (each device needs a value, berth vars set, unless it has a default):\n  BROKER  default "mqtt://localhost:1883"\n  SITE_ID  required  (ask the site team)');
  });

  it('the CLI: vars set, list --device with sources, rm', async () => {
    const set = cliIo(rmToken);
    expect(await run(['vars', 'set', 'SITE_ID=rome', 'LEVEL=debug', '--selector', 'site=rome'], set)).toBe(0);
    expect(set.stdout.slice(0, 2)).toEqual(['LEVEL set for selector site=rome', 'SITE_ID set for selector site=rome']);
    const noScope = cliIo(rmToken);
    expect(await run(['vars', 'set', 'A=1'], noScope)).toBe(2);
    expect(noScope.stderr.join('\n')).toContain('give exactly one of --device SERIAL, --selector SEL, --fleet');
    const list = cliIo(viewer);
    expect(await run(['vars', 'list', '--device', 'ROM-1'], list)).toBe(0);
    expect(list.stdout.join('\n')).toMatch(/BROKER\s+mqtt:\/\/broker\.fleet:1883\s+fleet\n.*LEVEL\s+debug\s+selector site=rome\n.*SITE_ID\s+rome\s+selector site=rome/);
    const conflict = cliIo(viewer);
    expect(await run(['vars', 'rm', 'SITE_ID', '--device', 'BER-2', '--yes'], cliIo(rmToken))).toBe(0);
    expect(await run(['vars', 'list', '--device', 'BER-2'], conflict)).toBe(1);
    expect(conflict.stdout.at(-1)).toBe('conflict: SITE_ID — selector site=berlin gives "berlin", selector tier=edge gives "edge" (a rollout that uses SITE_ID is refused for this device)');
    const dry = cliIo(rmToken);
    expect(await run(['campaign', 'create', '--manifest', 'app@1.0.0', '--selector', 'fleet=a', '--waves', '100%', '--dry-run'], dry)).toBe(1);
    expect(dry.stdout.at(-1)).toBe('refused: 1 device lacks SITE_ID (conflict: selector site=berlin and selector tier=edge give different values): BER-2');
    const dryOk = cliIo(rmToken);
    expect(await run(['campaign', 'create', '--manifest', 'app@1.0.0', '--selector', 'site=rome', '--waves', '100%', '--dry-run'], dryOk)).toBe(0);
    expect(dryOk.stdout.at(-1)).toBe('every target device has a value for BROKER, SITE_ID');
    const gone = cliIo(rmToken);
    expect(await run(['vars', 'rm', 'SITE_ID', '--device', 'BER-2', '--yes'], gone)).toBe(1);
    expect(gone.stderr.join('\n')).toContain('no variable SITE_ID set for device BER-2');
  });
});
