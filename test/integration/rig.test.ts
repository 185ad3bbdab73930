import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { finished } from 'node:stream/promises';
import Docker from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { busyboxLayer, forgeImage, pseudoRandomBytes } from '../rig/forge.js';
import { freePort, rigFromEnv, startRegistry } from '../rig/index.js';

const rig = rigFromEnv();
const docker = new Docker({ socketPath: rig.dockerSocket });

async function pull(reference: string): Promise<void> {
  const stream = await docker.pull(reference);
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null, events: { error?: string }[]) => {
      const failed = events?.find((e) => e.error);
      if (err || failed) reject(err ?? new Error(failed!.error));
      else resolve();
    });
  });
}

/** The stdout part of a non-TTY container log (frames multiplexed with stderr). */
async function stdoutOf(raw: Buffer): Promise<string> {
  const stdout = new PassThrough();
  const chunks: Buffer[] = [];
  stdout.on('data', (c: Buffer) => chunks.push(c));
  const muxed = new PassThrough();
  docker.modem.demuxStream(muxed, stdout, new PassThrough());
  muxed.end(raw);
  await finished(muxed);
  stdout.end();
  await finished(stdout);
  return Buffer.concat(chunks).toString('utf8');
}

/** Retries a GET until the container's server is listening (or the deadline passes). */
async function getWhenUp(url: string, deadlineMs: number): Promise<Response> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    try {
      return await fetch(url, { signal: AbortSignal.timeout(2000) });
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe('test rig', () => {
  const containers: Docker.Container[] = [];
  const images: string[] = [];

  afterAll(async () => {
    for (const c of containers) await c.remove({ force: true }).catch(() => undefined);
    for (const i of images) await docker.getImage(i).remove({ force: true }).catch(() => undefined);
  });

  it('answers on both endpoints', async () => {
    expect(await docker.ping().then(String)).toBe('OK');
    const res = await fetch(`${rig.registryUrl}/v2/`);
    expect(res.status).toBe(200);
    expect(rig.dockerHost).toBe(`unix://${rig.dockerSocket}`);
    // Workers get the rig from the global setup's environment, not only from rig.json.
    expect(process.env.BERTH_RIG_REGISTRY).toBe(rig.registry);
    expect(process.env.BERTH_RIG_DOCKER_SOCKET).toBe(rig.dockerSocket);
  });

  it('runs a forged image pulled by digest from the rig registry', async () => {
    const page = `hello from the forge ${process.pid}\n`;
    const image = await forgeImage(rig.registry, `rig-test/web-${process.pid}`, 'v1', {
      layers: [busyboxLayer(), { files: { '/www/index.html': page } }],
      config: { Cmd: ['/bin/sh', '-c', 'echo no command given; exit 3'], WorkingDir: '/www' },
    });
    expect(image.reference).toBe(`${rig.registry}/rig-test/web-${process.pid}@${image.manifestDigest}`);

    // The registry serves back exactly the manifest the forge computed.
    const manifest = await fetch(`${rig.registryUrl}/v2/rig-test/web-${process.pid}/manifests/v1`, {
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(manifest.headers.get('docker-content-digest')).toBe(image.manifestDigest);

    await pull(image.reference);
    images.push(image.reference);
    const inspected = await docker.getImage(image.reference).inspect();
    expect(inspected.Id).toBe(image.configDigest);
    expect(inspected.RootFS?.Layers).toEqual(image.layers.map((l) => l.diffId));

    const port = await freePort();
    const container = await docker.createContainer({
      Image: image.reference,
      Cmd: ['/bin/busybox', 'httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', '/www'],
      HostConfig: { NetworkMode: 'host', Init: true },
    });
    containers.push(container);
    await container.start();
    const res = await getWhenUp(`http://127.0.0.1:${port}/index.html`, 30_000);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(page);

    await container.remove({ force: true });
    containers.length = 0;
    await docker.getImage(image.reference).remove({ force: true });
    images.length = 0;
    await expect(docker.getImage(image.reference).inspect()).rejects.toThrow(/No such image/);
  });

  it('pulls a big stored-gzip layer intact', async () => {
    const big = pseudoRandomBytes(40 << 20, 'rig-big');
    const image = await forgeImage(rig.registry, `rig-test/big-${process.pid}`, 'v1', {
      layers: [busyboxLayer(), { files: { '/data/big.bin': big } }],
      config: { Cmd: ['sha256sum', '/data/big.bin'] },
    });
    await pull(image.reference);
    images.push(image.reference);
    const container = await docker.createContainer({ Image: image.reference, HostConfig: { NetworkMode: 'none', Init: true } });
    containers.push(container);
    await container.start();
    expect((await container.wait()).StatusCode).toBe(0);
    const raw = (await container.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
    const expected = createHash('sha256').update(big).digest('hex');
    expect(await stdoutOf(raw)).toBe(`${expected}  /data/big.bin\n`);
  });
});

describe('extra registries', () => {
  it('serves basic auth from an htpasswd user, and the forge pushes with it', async () => {
    const reg = await startRegistry({ htpasswd: { user: 'edge', password: 's3cret pass' } });
    try {
      expect((await fetch(`${reg.registryUrl}/v2/`)).status).toBe(401);
      const layers = [{ files: { '/hello.txt': 'hi' } }];
      await expect(forgeImage(reg.registry, 'auth/app', 'v1', { layers })).rejects.toThrow(/HTTP 401/);
      await expect(forgeImage(reg.registry, 'auth/app', 'v1', { layers, auth: { user: 'edge', password: 'wrong' } })).rejects.toThrow(/HTTP 401/);
      const image = await forgeImage(reg.registry, 'auth/app', 'v1', { layers, auth: { user: 'edge', password: 's3cret pass' } });
      const res = await fetch(`${reg.registryUrl}/v2/auth/app/manifests/${image.manifestDigest}`, {
        headers: {
          authorization: 'Basic ' + Buffer.from('edge:s3cret pass').toString('base64'),
          accept: 'application/vnd.oci.image.manifest.v1+json',
        },
      });
      expect(res.status).toBe(200);
      expect(createHash('sha256').update(Buffer.from(await res.arrayBuffer())).digest('hex')).toBe(image.manifestDigest.slice(7));
    } finally {
      await reg.stop();
    }
  });

  it('answers with a bearer challenge naming realm, service and scope under token auth', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rig-token-'));
    const reg = await (async () => {
      try {
        execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=berth-test-issuer',
          '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
        return await startRegistry({
          tokenAuth: { realm: 'http://127.0.0.1:1/token', service: 'berth-test', issuer: 'berth-test-issuer', rootCertBundle: join(dir, 'cert.pem') },
        });
      } catch (err) {
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    })();
    try {
      const res = await fetch(`${reg.registryUrl}/v2/some/repo/manifests/v1`);
      expect(res.status).toBe(401);
      const challenge = res.headers.get('www-authenticate') ?? '';
      expect(challenge).toMatch(/^Bearer /);
      expect(challenge).toContain('realm="http://127.0.0.1:1/token"');
      expect(challenge).toContain('service="berth-test"');
      expect(challenge).toContain('scope="repository:some/repo:pull"');
    } finally {
      await reg.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
