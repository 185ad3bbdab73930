import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { runCaptured } from './cli-support.js';
import { startRegistryProxy, type RunningProxy } from '../../registry-proxy/index.js';
import { busyboxLayer, forgeImage, type ForgedImage } from '../rig/forge.js';
import { rigFromEnv } from '../rig/index.js';
import { makePrivateCa, type PrivateCa } from '../rig/private-ca.js';

/**
 * docker and skopeo through the proxy serving HTTPS with a private CA (issue 18). Docker skips
 * verification for any registry on loopback, so its pull shows that HTTPS works; skopeo with
 * `--src-cert-dir` verifies: it copies with the fleet's CA and refuses with another CA's.
 */

const run = promisify(execFile);
const rig = rigFromEnv();
const docker = new Docker({ socketPath: rig.dockerSocket });
const repo = `tls-pull-${process.pid}`;
let dir = '';
let fleet: PrivateCa;
let other: PrivateCa;
let proxy: RunningProxy;
let image: ForgedImage;
let host = '';

/** A directory laid out as /etc/docker/certs.d/HOST:PORT/ is: the CA as ca.crt. */
async function certDir(name: string, ca: PrivateCa): Promise<string> {
  const d = join(dir, 'certs.d', name, host);
  await mkdir(d, { recursive: true });
  await copyFile(ca.caFile, join(d, 'ca.crt'));
  return d;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-tls-pull-'));
  fleet = await makePrivateCa(dir, 'fleet');
  other = await makePrivateCa(dir, 'other');
  image = await forgeImage(rig.registry, repo, 'v1', { layers: [busyboxLayer(), { files: { '/etc/berth-tls': 'pulled over https\n' } }], config: { Cmd: ['/bin/cat', '/etc/berth-tls'] } });
  proxy = await startRegistryProxy({ cacheDir: join(dir, 'cache'), upstreams: [{ alias: 'rig', url: rig.registryUrl }], anonymous: true, tls: await fleet.issue('proxy'), log: createLogger('tls-pull', { level: 'silent' }) });
  host = new URL(proxy.url).host;
}, 60_000);

afterAll(async () => {
  await docker.getImage(`${host}/rig/${repo}@${image.manifestDigest}`).remove({ force: true }).catch(() => undefined);
  await proxy?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('docker and skopeo through the HTTPS proxy', () => {
  it('skopeo copies with the fleet CA in --src-cert-dir, verifying the certificate', async () => {
    expect(proxy.url).toMatch(/^https:/);
    await run('skopeo', ['copy', '--src-cert-dir', await certDir('fleet', fleet), `docker://${host}/rig/${repo}@${image.manifestDigest}`, `dir:${join(dir, 'img')}`]);
    const { stdout } = await run('skopeo', ['inspect', '--cert-dir', await certDir('fleet2', fleet), `docker://${host}/rig/${repo}:v1`]);
    expect(JSON.parse(stdout).Digest).toBe(image.manifestDigest);
  });

  it('skopeo refuses the proxy when --src-cert-dir holds another CA', async () => {
    const err = await run('skopeo', ['copy', '--src-cert-dir', await certDir('other', other), `docker://${host}/rig/${repo}@${image.manifestDigest}`, `dir:${join(dir, 'img2')}`]).then(() => null, (e: { stderr?: string }) => e);
    expect(err?.stderr).toMatch(/x509: certificate signed by unknown authority|failed to verify certificate/);
  });

  it('berth registry-proxy warm trusts the CA with --ca-file, and says so when it is the wrong one', async () => {
    const warm = (caFile: string) => runCaptured(['registry-proxy', 'warm', '--proxy', proxy.url, '--ca-file', caFile, `${rig.registry}/${repo}:v1`], { HOME: dir, NO_COLOR: '1' });
    const ok = await warm(fleet.caFile);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(image.manifestDigest);
    const wrong = await warm(other.caFile);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`warm: the TLS certificate of ${host} is not signed by a CA this client trusts (UNABLE_TO_VERIFY_LEAF_SIGNATURE); it is not from the CA in ${other.caFile}`);
  });

  it('docker pulls over HTTPS (it does not verify loopback registries)', async () => {
    const stream = await docker.pull(`${host}/rig/${repo}@${image.manifestDigest}`);
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(stream, (err: Error | null, events: { error?: string }[]) => {
        const failed = events?.find((e) => e.error);
        if (err || failed) reject(err ?? new Error(failed!.error));
        else resolve();
      });
    });
    const info = await docker.getImage(`${host}/rig/${repo}@${image.manifestDigest}`).inspect();
    expect(info.Id).toBe(image.configDigest);
  });
});
