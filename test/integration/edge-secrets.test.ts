import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EdgeDaemon } from '../../edge-daemon/index.js';
import { LABEL } from '../../edge-daemon/reconcile/spec.js';
import { sealForDevice } from '../../protocol/secret-box.js';
import { rigFromEnv } from '../rig/index.js';
import { execIn } from './engine-probe.js';
import { committed, forgeApp, makeDevice, manifest, removeDevice, service, startProxy, startTestControlPlane, startTestDaemon, waitFor, type TestControlPlane, type TestDevice } from './edge-daemon-fixtures.js';

/**
 * The gateway's half of secrets on the rig's real dockerd: the daemon decrypts the document's JWEs
 * with its own X25519 key onto a real tmpfs (mounted here), 0400 and owned by the target uid, and
 * the container reads them at /run/secrets. A JWE addressed to another device is refused with the
 * running release untouched; a rotation recreates the container; a restart after the tmpfs was
 * emptied (a reboot) decrypts again from the journal; a root that is not tmpfs is refused.
 */

const rig = rigFromEnv();
const docker = new Docker({ socketPath: rig.dockerSocket });
let cp: TestControlPlane;
let proxy: Awaited<ReturnType<typeof startProxy>>;
let image = '';
let tmpfsRoot = '';
const daemons: EdgeDaemon[] = [];
const devices: string[] = [];
const VALUE_1 = `pw-one-${randomBytes(10).toString('hex')}`;
const VALUE_2 = `pw-two-${randomBytes(10).toString('hex')}`;
const OTHER = `pw-other-${randomBytes(10).toString('hex')}`;

type Device = TestDevice;

async function start(dev: Device, secretsDir = tmpfsRoot) {
  const d = await startTestDaemon(cp, dev, rig.dockerHost, { secretsDir });
  daemons.push(d);
  return d;
}


async function exec(container: string, cmd: string[]): Promise<string> {
  return (await execIn(docker, container, cmd)).out;
}

async function running(deviceId: string) {
  const [c] = await docker.listContainers({ filters: { label: [`${LABEL.device}=${deviceId}`, `${LABEL.service}=app`] } });
  if (!c) throw new Error('no running app container');
  return c;
}

/** Every file under a directory, recursively, as bytes. */
async function everyFile(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.set(join(e.parentPath, e.name), await readFile(join(e.parentPath, e.name)));
  }
  return out;
}

const spec = (version: string) => manifest(version, { app: service(image, { secrets: [{ source: 'db_password', target: 'db_password', uid: 1000, gid: 1000, mode: 0o400 }] }) }, { secrets: { db_password: {} } });

async function secretFor(to: string, key: string, ref: string, value: string) {
  return { db_password: { ref, jwe: await sealForDevice(Buffer.from(value), key, { device: to, name: 'db_password', ref }) } };
}

beforeAll(async () => {
  tmpfsRoot = await mkdtemp(join(tmpdir(), 'berth-secrets-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', tmpfsRoot]);
  proxy = await startProxy(rig);
  cp = await startTestControlPlane({ registryProxy: proxy.url });
  image = (await forgeApp(rig, `berth-test/secrets-${process.pid}`, 's1')).reference;
});

afterAll(async () => {
  for (const d of daemons) await d.close();
  for (const id of devices) await removeDevice(docker, id);
  await cp?.close();
  await proxy?.close();
  if (tmpfsRoot) {
    execFileSync('umount', ['-l', tmpfsRoot]);
    await rm(tmpfsRoot, { recursive: true, force: true });
  }
});

describe('secrets on the gateway', () => {
  let dev: Device;
  let other: Device;
  let daemon: EdgeDaemon;
  let firstContainer = '';
  let jws1 = '';

  it('decrypts its secret onto tmpfs (0400, target uid) and the container reads it at /run/secrets', async () => {
    dev = await makeDevice(cp);
    other = await makeDevice(cp);
    devices.push(dev.deviceId, other.deviceId);
    daemon = await start(dev);
    const key = await waitFor('the encryption key registered at enrollment', () => cp.encryptionKey(dev.deviceId));
    jws1 = await cp.publish(dev.deviceId, { sequence: 1, spec: spec('1'), secrets: await secretFor(dev.deviceId, key, 'r1', VALUE_1) });
    await committed(daemon, 1);
    const c = await running(dev.deviceId);
    firstContainer = c.Id;
    expect(await exec(c.Id, ['cat', '/run/secrets/db_password'])).toBe(VALUE_1);
    expect(await exec(c.Id, ['sh', '-c', 'grep " /run/secrets/db_password " /proc/mounts'])).toMatch(/ ro[ ,]/);
    const info = await docker.getContainer(c.Id).inspect();
    const source = info.Mounts.find((m) => m.Destination === '/run/secrets/db_password')?.Source ?? '';
    expect(source.startsWith(join(tmpfsRoot, dev.deviceId, 'secrets') + '/')).toBe(true);
    const st = await stat(source);
    expect([st.mode & 0o777, st.uid, st.gid]).toEqual([0o400, 1000, 1000]);
  });

  it('keeps no plaintext in its state dir or in the document as served', async () => {
    const files = await everyFile(dev.stateDir);
    expect([...files.keys()].some((f) => f.endsWith('release.json'))).toBe(true);
    for (const [name, bytes] of files) expect(bytes.includes(VALUE_1), name).toBe(false);
    expect(jws1.includes(VALUE_1)).toBe(false);
    expect(Buffer.from(jws1.split('.')[1], 'base64url').includes(VALUE_1)).toBe(false);
  });

  it('refuses a document whose JWE is addressed to another device, and stops nothing', async () => {
    daemons.push(await start(other));
    const otherKey = await waitFor('the other device key', () => cp.encryptionKey(other.deviceId));
    await cp.publish(dev.deviceId, { sequence: 2, spec: spec('2'), secrets: await secretFor(other.deviceId, otherKey, 'r2', OTHER) });
    await waitFor('the refusal reported', () => cp.reports(dev.deviceId).some((r) => r.error?.includes('secret-refused')));
    const refusal = cp.reports(dev.deviceId).findLast((r) => r.error?.includes('secret-refused'))!;
    expect(refusal.error).toMatch(/secret db_password is addressed to device .*, this device is /);
    expect(refusal.running).toBe('site@1.0.0');
    expect((await running(dev.deviceId)).Id).toBe(firstContainer);
    expect(await exec(firstContainer, ['cat', '/run/secrets/db_password'])).toBe(VALUE_1);
  });

  it('rotates: a new version recreates the container with the new value and removes the old file', async () => {
    const key = cp.encryptionKey(dev.deviceId)!;
    await cp.publish(dev.deviceId, { sequence: 3, spec: spec('1'), secrets: await secretFor(dev.deviceId, key, 'r3', VALUE_2) });
    await committed(daemon, 3);
    const c = await running(dev.deviceId);
    expect(c.Id).not.toBe(firstContainer);
    expect(await exec(c.Id, ['cat', '/run/secrets/db_password'])).toBe(VALUE_2);
    const left = await everyFile(join(tmpfsRoot, dev.deviceId, 'secrets'));
    expect([...left.values()].map((b) => b.toString())).toEqual([VALUE_2]);
  });

  it('after a reboot (tmpfs emptied, containers stopped) a restarted daemon decrypts again from its journal', async () => {
    await daemon.close();
    const c = await running(dev.deviceId);
    await docker.getContainer(c.Id).stop({ t: 0 });
    await rm(join(tmpfsRoot, dev.deviceId), { recursive: true, force: true });
    daemon = await start(dev);
    const back = await waitFor('the app running again', () => running(dev.deviceId).catch(() => undefined));
    expect(await exec(back.Id, ['cat', '/run/secrets/db_password'])).toBe(VALUE_2);
  });

  it('refuses secrets when its secrets dir is not a tmpfs', async () => {
    const disk = await makeDevice(cp);
    devices.push(disk.deviceId);
    const diskDir = join(disk.dir, 'secrets-on-disk');
    await mkdir(diskDir);
    const d = await start(disk, diskDir);
    const key = await waitFor('its key', () => cp.encryptionKey(disk.deviceId));
    await cp.publish(disk.deviceId, { sequence: 1, spec: spec('1'), secrets: await secretFor(disk.deviceId, key, 'r1', VALUE_1) });
    await waitFor('the refusal reported', () => cp.reports(disk.deviceId).some((r) => r.error?.includes('is not a tmpfs')));
    expect(d.status().running).toBeNull();
    expect(await readdir(diskDir)).toEqual([]);
  });
});
