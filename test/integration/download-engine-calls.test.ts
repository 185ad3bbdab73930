import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { createImageFetcher, type ImageFetcher } from '../../edge-daemon/download/index.js';
import { EngineClient } from '../../edge-daemon/engine/client.js';
import { startRegistryProxy, type RunningProxy } from '../../registry-proxy/index.js';
import { busyboxLayer, forgeImage } from '../rig/forge.js';
import { rigFromEnv } from '../rig/index.js';

/**
 * What the download channel asks of the engine (real engine, registry and proxy): listing the
 * engine's layer chains costs a call per image it holds, and every daemon of a campaign wave asks
 * at once on a shared engine, so it is done only for an image the engine lacks.
 */

const rig = rigFromEnv();
const docker = new Docker({ socketPath: rig.dockerSocket });
const log = createLogger('test-download-engine', { level: process.env.BERTH_TEST_LOG ?? 'warn' });
const run = randomBytes(4).toString('hex');
const cleanups: (() => Promise<void> | void)[] = [];

/** The daemon's engine client, counting the image listings it makes. */
class CountingEngine extends EngineClient {
  listings = 0;
  override listImages(...args: Parameters<EngineClient['listImages']>): ReturnType<EngineClient['listImages']> {
    this.listings++;
    return super.listImages(...args);
  }
}

describe('download channel: engine calls', () => {
  let proxy: RunningProxy;

  function fetcher(engine: EngineClient): ImageFetcher {
    const stateDir = mkdtempSync(join(tmpdir(), 'berth-dl-engine-'));
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const f = createImageFetcher({ stateDir, docker: engine, deviceId: `dle-${run}`, registryProxy: proxy.url, pullToken: async () => 'anonymous', log, diskMarginBytes: 1 << 20 });
    cleanups.push(() => f.close());
    return f;
  }

  beforeAll(async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'berth-dl-engine-proxy-'));
    cleanups.push(() => rmSync(cacheDir, { recursive: true, force: true }));
    proxy = await startRegistryProxy({ cacheDir, upstreams: [{ alias: 'rig', url: rig.registryUrl }], anonymous: true, log: createLogger('test-proxy', { level: 'error' }) });
    cleanups.push(() => proxy.close());
  });

  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('lists the engine’s layer chains for an image it lacks, not for one it has', async () => {
    const image = await forgeImage(rig.registry, `berth-test/dl-engine-${run}`, 'v1', { layers: [busyboxLayer(), { files: { '/app/version': run } }], config: { Cmd: ['true'] } });
    cleanups.push(() => docker.getImage(image.configDigest).remove({ force: true }).then(() => undefined, () => undefined));
    const first = new CountingEngine(rig.dockerHost);
    expect((await fetcher(first).ensureImages([image.reference], {}))[image.reference].imageId).toBe(image.configDigest);
    expect(first.listings).toBeGreaterThan(0);
    // A new fetcher on a fresh state dir (a restarted daemon): the engine has the image now.
    const again = new CountingEngine(rig.dockerHost);
    const f = fetcher(again);
    expect(await f.missingBytes([image.reference])).toBe(0);
    expect((await f.ensureImages([image.reference], {}))[image.reference].imageId).toBe(image.configDigest);
    expect(again.listings).toBe(0);
  });
});
