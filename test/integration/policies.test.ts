import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { forgeImage } from '../rig/forge.js';
import { rigFromEnv } from '../rig/index.js';
import { writeFile } from 'node:fs/promises';
import { run } from '../../cli/index.js';
import { capturingIo, type CapturedIo } from './cli-support.js';
import { call, csvOf, enroll, failingError, newDevice } from './control-plane-support.js';

/** The CLI in process, against the real control plane, as an operator would run it. */
function cliIo(token: string): CapturedIo {
  return capturingIo({ BERTH_SERVER: cp.url, BERTH_TOKEN: token }).io;
}

/**
 * Privilege policies over real HTTP and a real libSQL file: a manifest that asks for a device,
 * a group and ports is refused for rollout until an admin grants them to the devices' group, and
 * the refusal names each group of devices and each privilege it lacks.
 */

const ADMIN = 'berth_' + randomBytes(32).toString('base64url');
let dir: string;
let cp: RunningControlPlane;
let image = '';
let releaseManager = '';

const stack = (version: string, extra = '') => `name: hub
version: ${version}
services:
  flows:
    image: ${image}
    devices: ["/dev/ttyUSB0"]
    group_add: [dialout]
    ports: ["1880:1880"]${extra}
  plain:
    image: ${image}
    network_mode: host
`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-policies-'));
  const rig = rigFromEnv();
  image = (await forgeImage(rig.registry, `berth-test/policy-app-${process.pid}`, 'v1', { layers: [{ files: { 'x.txt': 'x\n' } }] })).tagReference;
  cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'cp.db')}`, dataDir: dir, adminToken: ADMIN, log: createLogger('control-plane', { level: 'warn' }) });
  const devices = [...['ZB-1', 'ZB-2', 'ZB-3'].map((s) => ({ d: newDevice(s), labels: 'hw=zigbee;site=berlin' })), { d: newDevice('PL-1'), labels: 'hw=plain;site=berlin' }];
  for (const { d, labels } of devices) {
    const r = await call(cp.url, 'POST', '/v1/devices/import', { token: ADMIN, text: csvOf([d], () => labels), type: 'text/csv' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
  }
  const tok = await call(cp.url, 'POST', '/v1/tokens', { token: ADMIN, json: { name: 'rm', role: 'release-manager' } });
  releaseManager = tok.body.token as string;
});

afterAll(async () => {
  await cp?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('privilege policies', () => {
  it('publishing lists the privileges; manifests show returns them', async () => {
    const r = await call(cp.url, 'POST', '/v1/manifests', { token: releaseManager, text: stack('1.0.0'), type: 'application/yaml' });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    const expected = [
      { key: 'devices', value: '/dev/ttyUSB0', services: ['flows'] },
      { key: 'group_add', value: 'dialout', services: ['flows'] },
      { key: 'network_mode', value: 'host', services: ['plain'] },
      { key: 'ports', value: '1880', services: ['flows'] },
    ];
    expect(r.body.privileges).toEqual(expected);
    const show = await call(cp.url, 'GET', '/v1/manifests/hub/1.0.0', { token: releaseManager });
    expect(show.body.privileges).toEqual(expected);
  });

  it('a campaign is refused up front, naming each device group and privilege; the dry run says the same and creates nothing', async () => {
    const r = await call(cp.url, 'POST', '/v1/campaigns', { token: releaseManager, json: { manifest: 'hub@1.0.0', selector: 'site=berlin' } });
    expect(r.status, JSON.stringify(r.body)).toBe(422);
    expect(r.body.error.code).toBe('privileges-not-granted');
    expect(r.body.error.message).toBe('the rollout of hub@1.0.0 would give devices privileges no policy grants: 4 devices matching site=berlin lack devices=/dev/ttyUSB0, group_add=dialout, ports=1880 (no policy grants them)');
    const dry = await call(cp.url, 'POST', '/v1/policies/check', { token: releaseManager, json: { manifest: 'hub@1.0.0', selector: 'site=berlin' } });
    expect(dry.status).toBe(200);
    expect(dry.body).toMatchObject({ ok: false, devices: 4, groups: [{ devices: 4, sample: ['PL-1', 'ZB-1', 'ZB-2', 'ZB-3'], policies: [] }] });
    expect((await call(cp.url, 'GET', '/v1/campaigns', { token: releaseManager })).body.campaigns).toEqual([]);
  });

  it('policies are admin only, validated with the key named, and audited', async () => {
    const denied = await call(cp.url, 'PUT', '/v1/policies/zigbee', { token: releaseManager, json: { selector: 'hw=zigbee', allow: ['devices=/dev/ttyUSB*'] } });
    expect(denied.status).toBe(403);
    const bad = await call(cp.url, 'PUT', '/v1/policies/zigbee', { token: ADMIN, json: { selector: 'hw=zigbee', allow: ['device=/dev/ttyUSB*'] } });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'invalid-allow', field: 'allow' });
    expect(bad.body.error.message).toContain('unknown key "device"');
    const set = await call(cp.url, 'PUT', '/v1/policies/zigbee', { token: ADMIN, json: { selector: 'hw=zigbee', allow: ['devices=/dev/ttyUSB*,/dev/ttyACM*', 'group_add=dialout'] } });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.body).toMatchObject({ name: 'zigbee', selector: 'hw=zigbee', allow: ['devices=/dev/ttyUSB*,/dev/ttyACM*', 'group_add=dialout'], devices: 3 });
    const audit = await call(cp.url, 'GET', '/v1/audit', { token: ADMIN });
    expect(audit.body.entries.filter((e: { action: string }) => e.action.startsWith('policy.')).map((e: { action: string; target: string }) => `${e.action} ${e.target}`)).toEqual(['policy.create zigbee']);
  });

  it('with one policy the refusal splits the fleet into groups; with both, the campaign is created', async () => {
    const r = await call(cp.url, 'POST', '/v1/campaigns', { token: releaseManager, json: { manifest: 'hub@1.0.0', selector: 'site=berlin' } });
    expect(r.status).toBe(422);
    expect(r.body.check.groups.map((g: { message: string }) => g.message)).toEqual([
      '3 devices matching site=berlin lack ports=1880 (policies zigbee do not grant it)',
      '1 device matching site=berlin lacks devices=/dev/ttyUSB0, group_add=dialout, ports=1880 (no policy grants them)',
    ]);
    const one = await call(cp.url, 'POST', '/v1/devices/PL-1/assign', { token: releaseManager, json: { manifest: 'hub@1.0.0' } });
    expect(one.status).toBe(422);
    expect(one.body.error.message).toContain('1 device lacks devices=/dev/ttyUSB0, group_add=dialout, ports=1880 (no policy grants them)');
    expect((await call(cp.url, 'PUT', '/v1/policies/site-ports', { token: ADMIN, json: { selector: 'site=berlin', allow: ['ports=1880-1890'] } })).status).toBe(200);
    const zigbeeOnly = await call(cp.url, 'POST', '/v1/campaigns', { token: releaseManager, json: { manifest: 'hub@1.0.0', selector: 'hw=zigbee' } });
    expect(zigbeeOnly.status, JSON.stringify(zigbeeOnly.body)).toBe(201);
    const list = await call(cp.url, 'GET', '/v1/policies', { token: releaseManager });
    expect(list.body.policies.map((p: { name: string; devices: number }) => `${p.name}:${p.devices}`)).toEqual(['site-ports:4', 'zigbee:3']);
  });

  it('a plain manifest needs no policy at all; a removed policy grants nothing any more', async () => {
    const plain = await call(cp.url, 'POST', '/v1/manifests', { token: releaseManager, text: `name: plain\nversion: 1.0.0\nservices:\n  a: { image: "${image}", network_mode: host }\n`, type: 'application/yaml' });
    expect(plain.status).toBe(201);
    expect((await call(cp.url, 'POST', '/v1/devices/PL-1/assign', { token: releaseManager, json: { manifest: 'plain@1.0.0' } })).status).toBe(200);
    // A manifest asking for no privilege is checked by counting its targets (issue 17), not reading them.
    const bare = await call(cp.url, 'POST', '/v1/manifests', { token: releaseManager, text: `name: bare\nversion: 1.0.0\nservices:\n  a: { image: "${image}" }\n`, type: 'application/yaml' });
    expect(bare.status).toBe(201);
    const bareCheck = await call(cp.url, 'POST', '/v1/policies/check', { token: releaseManager, json: { manifest: 'bare@1.0.0', selector: 'hw=zigbee' } });
    expect(bareCheck.body).toMatchObject({ ok: true, privileges: [], devices: 3, groups: [] });
    expect((await call(cp.url, 'DELETE', '/v1/policies/zigbee', { token: ADMIN })).status).toBe(200);
    const again = await call(cp.url, 'POST', '/v1/policies/check', { token: releaseManager, json: { manifest: 'hub@1.0.0', selector: 'hw=zigbee' } });
    expect(again.body.groups[0].message).toBe('3 devices matching hw=zigbee lack devices=/dev/ttyUSB0, group_add=dialout (policies site-ports do not grant them)');
  });

  it('the CLI: apply prints the privileges, campaign create --dry-run shows the check, policies set|list|show|rm', async () => {
    const file = join(dir, 'hub-2.yaml');
    await writeFile(file, stack('2.0.0', '\n    container_name: node-red'));
    const apply = cliIo(releaseManager);
    expect(await run(['apply', '-f', file], apply)).toBe(0);
    expect(apply.stdout.join('\n')).toContain('privileges (a rollout needs a policy granting each):\n  devices=/dev/ttyUSB0  (flows)\n  group_add=dialout  (flows)\n  network_mode=host  (plain)\n  ports=1880  (flows)');
    expect(apply.stderr.join('\n')).toMatch(/^warning: hub-2\.yaml:\d+:\d+: services\.flows\.container_name: Berth names the container itself/);

    const dry = cliIo(releaseManager);
    expect(await run(['campaign', 'create', '--manifest', 'hub@2.0.0', '--selector', 'hw=plain', '--waves', '100%', '--dry-run'], dry)).toBe(1);
    expect(dry.stdout[0]).toBe('dry run: hub@2.0.0 to 1 device(s) matching hw=plain; nothing created');
    expect(dry.stdout.at(-1)).toBe('refused: 1 device matching hw=plain lacks devices=/dev/ttyUSB0, group_add=dialout (policies site-ports do not grant them)');

    const set = cliIo(ADMIN);
    expect(await run(['policies', 'set', 'plain-serial', '--selector', 'hw=plain', '--allow', 'devices=/dev/ttyUSB*', '--allow', 'group_add=dialout'], set)).toBe(0);
    expect(set.stdout).toEqual(['policy plain-serial grants devices=/dev/ttyUSB* group_add=dialout to 1 device(s) matching hw=plain']);
    const ok = cliIo(releaseManager);
    expect(await run(['campaign', 'create', '--manifest', 'hub@2.0.0', '--selector', 'hw=plain', '--waves', '100%', '--dry-run'], ok)).toBe(0);
    expect(ok.stdout.at(-1)).toBe('every target device is granted what it asks for');
    const list = cliIo(releaseManager);
    expect(await run(['policies', 'list'], list)).toBe(0);
    expect(list.stdout.join('\n')).toMatch(/plain-serial\s+hw=plain\s+1\s+devices=\/dev\/ttyUSB\* group_add=dialout/);
    const notAdmin = cliIo(releaseManager);
    expect(await run(['policies', 'rm', 'plain-serial', '--yes'], notAdmin)).toBe(1);
    const rm = cliIo(ADMIN);
    expect(await run(['policies', 'rm', 'plain-serial', '--yes'], rm)).toBe(0);
    const bad = cliIo(ADMIN);
    expect(await run(['policies', 'set', 'x', '--selector', 'hw=plain', '--allow', 'cap_add=NET_ADMIM'], bad)).toBe(1);
    expect(bad.stderr.join('\n')).toContain('cap_add=NET_ADMIM: "NET_ADMIM" is not a Linux capability');
  });

  it('a device that joins a running campaign late without the grant is skipped, reported, and never deployed', async () => {
    expect((await call(cp.url, 'PUT', '/v1/policies/lab', { token: ADMIN, json: { selector: 'site=lab', allow: ['devices=/dev/ttyUSB*', 'group_add=dialout', 'ports=1880'] } })).status).toBe(200);
    const first = newDevice('LAB-1');
    expect((await call(cp.url, 'POST', '/v1/devices/import', { token: ADMIN, text: csvOf([first], () => 'site=lab;grant=yes'), type: 'text/csv' })).status).toBe(200);
    await enroll(cp.url, first);
    const created = await call(cp.url, 'POST', '/v1/campaigns', { token: releaseManager, json: { manifest: 'hub@1.0.0', selector: 'site=lab', waves: ['100%'], start: true } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    // The policy narrows after the campaign started; a late joiner no longer matches it.
    expect((await call(cp.url, 'PUT', '/v1/policies/lab', { token: ADMIN, json: { selector: 'site=lab,grant=yes', allow: ['devices=/dev/ttyUSB*', 'group_add=dialout', 'ports=1880'] } })).status).toBe(200);
    const late = newDevice('LAB-2');
    expect((await call(cp.url, 'POST', '/v1/devices/import', { token: ADMIN, text: csvOf([late], () => 'site=lab'), type: 'text/csv' })).status).toBe(200);
    const { token } = await enroll(cp.url, late);
    const id = created.body.id as string;
    expect(await failingError(cp.url, id, 'LAB-2', releaseManager)).toBe('skipped, never deployed: device LAB-2 joined late and lacks devices=/dev/ttyUSB0, group_add=dialout, ports=1880 (no policy grants them)');
    expect((await call(cp.url, 'GET', '/v1/device/desired', { token })).status).toBe(204);
  });
});
