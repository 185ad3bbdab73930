import Docker from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { busyboxLayer, forgeImage } from '../rig/forge.js';
import { freePort, rigFromEnv } from '../rig/index.js';

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
  });

  it('runs a forged image pulled by digest from the rig registry', async () => {
    const page = `hello from the forge ${process.pid}\n`;
    const image = await forgeImage(rig.registry, 'rig-test/web', 'v1', {
      layers: [busyboxLayer(), { files: { '/www/index.html': page } }],
      config: { Cmd: ['/bin/sh', '-c', 'echo no command given; exit 3'], WorkingDir: '/www' },
    });
    expect(image.reference).toBe(`${rig.registry}/rig-test/web@${image.manifestDigest}`);

    // The registry serves back exactly the manifest the forge computed.
    const manifest = await fetch(`${rig.registryUrl}/v2/rig-test/web/manifests/v1`, {
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
});
