import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { settledDeltaPlan } from '../../common/delta/plan-client.js';
import { createLogger } from '../../common/log.js';
import { createImageFetcher, type ImageFetcher } from '../../edge-daemon/download/index.js';
import { DELTA_MIN_LAYER_BYTES } from '../../edge-daemon/download/delta-plan.js';
import { EngineClient } from '../../edge-daemon/engine/client.js';
import type { FetchProgress } from '../../edge-daemon/images.js';
import { startRegistryProxy, type RunningProxy } from '../../registry-proxy/index.js';
import { busyboxLayer, forgeImage, type ForgedImage, type LayerSpec } from '../rig/forge.js';
import { appLayer, pushIndex as pushIndexTo } from './delta-fixtures.js';
import { rigFromEnv } from '../rig/index.js';

/**
 * The gateway side of layer deltas (issue 11) on the rig's real engine, registry and proxy: the
 * daemon asks for a plan, fetches deltas over the resumable channel, rebuilds the layers against
 * bases from its store or `docker save`, and the engine ends up with the signed image.
 */

const rig = rigFromEnv();
const docker = new Docker({ socketPath: rig.dockerSocket });
const log = createLogger('test-download-delta', { level: process.env.BERTH_TEST_LOG ?? 'warn' });
const run = randomBytes(4).toString('hex');
const repo = `berth-test/delta-gw-${run}`;
const cleanups: (() => Promise<void> | void)[] = [];

/**
 * A TCP relay in front of the proxy: counts the bytes it passes down, and can stall (once) the
 * answer to the first request whose head `cut.match`es after `cut.after` of its bytes: the link
 * goes silent and, 300 ms later, `cut.onCut` runs (the daemon is stopped there).
 */
class Relay {
  url = '';
  down = 0;
  heads: string[] = [];
  cut?: { match: (head: string) => boolean; after: number; onCut: () => void };
  private readonly server = createServer((client) => this.connect(client));
  private readonly sockets = new Set<Socket>();

  constructor(private readonly target: string) {}

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    cleanups.push(() => new Promise<void>((r) => { for (const s of this.sockets) s.destroy(); this.server.close(() => r()); }));
    return this;
  }

  private connect(client: Socket): void {
    const upstream = createConnection({ host: '127.0.0.1', port: Number(new URL(this.target).port) });
    this.sockets.add(client).add(upstream);
    let watched = -1;
    client.on('data', (chunk: Buffer) => {
      const head = chunk.toString('latin1');
      this.heads.push(head);
      if (this.cut) watched = this.cut.match(head) ? 0 : -1;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      const cut = this.cut;
      if (cut && watched >= 0 && watched + chunk.length >= cut.after) {
        this.cut = undefined;
        this.down += cut.after - watched;
        client.write(chunk.subarray(0, cut.after - watched));
        upstream.destroy();
        setTimeout(cut.onCut, 300);
        return;
      }
      if (watched >= 0) watched += chunk.length;
      this.down += chunk.length;
      if (!client.write(chunk)) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
    });
    const close = (): void => { client.destroy(); upstream.destroy(); };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', () => { if (watched < 0 || this.cut) close(); });
  }

  deltaRequests(): string[] {
    return this.heads.filter((h) => h.startsWith('GET /berth/v1/deltas/'));
  }
}

const pushIndex = (tag: string, mine: ForgedImage, other: ForgedImage): Promise<string> => pushIndexTo(rig.registryUrl, repo, tag, mine, other);

describe('layer deltas on the gateway (real engine, registry and proxy)', () => {
  const base: LayerSpec = { files: { ...busyboxLayer().files, '/etc/berth-run': run } };
  let proxy: RunningProxy;
  let cacheDir: string;
  const forge = (tag: string, seed: string, version: 1 | 2): Promise<ForgedImage> =>
    forgeImage(rig.registry, repo, tag, { layers: [base, appLayer(seed, version)], config: { Cmd: ['/bin/sh', '-c', 'sleep 3600'] } });
  const pair = async (seed: string): Promise<[ForgedImage, ForgedImage]> => [await forge(`${seed}-1`, seed, 1), await forge(`${seed}-2`, seed, 2)];

  function fetcher(url: string, extra: { attempts?: number } = {}, stateDir = newDir('berth-delta-gw-')): ImageFetcher {
    const f = createImageFetcher({
      stateDir, docker: new EngineClient(rig.dockerHost), deviceId: `dgw-${run}`, registryProxy: url, pullToken: async () => 'anonymous', log,
      diskMarginBytes: 1 << 20, attempts: extra.attempts, backoffBaseMs: 20, backoffCapMs: 200, idleTimeoutMs: 10_000,
    });
    cleanups.push(() => f.close());
    return f;
  }

  function newDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  beforeAll(async () => {
    cacheDir = newDir('berth-delta-gw-proxy-');
    proxy = await startRegistryProxy({ cacheDir, upstreams: [{ alias: 'rig', url: rig.registryUrl }], anonymous: true, delta: { level: 3 }, log: createLogger('test-proxy', { level: 'error' }) });
    cleanups.push(() => proxy.close());
  });

  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('v1 → v2 through a delta: fewer bytes on the wire than the layer, the image id is the signed config digest', async () => {
    const [v1, v2] = await pair('a');
    const relay = await new Relay(proxy.url).start();
    const f = fetcher(relay.url);
    await f.ensureImages([v1.reference], {});
    const before = relay.down;
    const progress: FetchProgress[] = [];
    const got = await f.ensureImages([v2.reference], { have: [v1.reference], onProgress: (p) => progress.push(p) });
    const moved = relay.down - before;
    const layer = v2.layers[1];
    expect(got[v2.reference].imageId).toBe(v2.configDigest);
    expect(got[v2.reference].delta).toEqual({ rebuilt: 1, fallbacks: [] });
    expect((await docker.getImage(v2.configDigest).inspect()).RootFS.Layers).toEqual(v2.layers.map((l) => l.diffId));
    // Everything that travelled for v2 (plan, manifest, config, delta header and delta) against its layer.
    expect(moved).toBeLessThan(layer.size / 5);
    const last = progress.at(-1)!;
    expect(last.delta).toBe(true);
    expect(last.full).toBe(layer.size);
    expect(last.done).toBeLessThan(layer.size / 5);
    expect(relay.deltaRequests()).toHaveLength(2); // the header, then the delta
  });

  it('takes the base out of `docker save` when the store does not hold it', async () => {
    const [v1, v2] = await pair('b');
    await fetcher(proxy.url).ensureImages([v1.reference], {});
    const relay = await new Relay(proxy.url).start();
    const got = await fetcher(relay.url).ensureImages([v2.reference], { have: [v1.reference] });
    expect(got[v2.reference]).toEqual({ imageId: v2.configDigest, delta: { rebuilt: 1, fallbacks: [] } });
    expect(relay.down).toBeLessThan(v2.layers[1].size / 5);
  });

  it('resumes a cut delta from the bytes on disk, also in a new fetcher (a daemon restart)', async () => {
    const [v1, v2] = await pair('c');
    const stateDir = newDir('berth-delta-gw-');
    await fetcher(proxy.url, {}, stateDir).ensureImages([v1.reference], {});
    const plan = await settledDeltaPlan({ proxy: proxy.url, request: { target: `rig/${repo}@${v2.manifestDigest}`, have: [`rig/${repo}@${v1.manifestDigest}`] } });
    const delta = plan.layers[1].delta!;
    const relay = await new Relay(proxy.url).start();
    const stop = new AbortController();
    // The delta's answer is cut halfway and the daemon stops at that moment.
    relay.cut = {
      match: (head) => head.startsWith(`GET /berth/v1/deltas/${delta.digest}?`) && !/\r\nrange:/i.test(head),
      after: 300 + Math.floor(delta.size / 2),
      onCut: () => stop.abort(new Error('daemon stopped')),
    };
    const first = fetcher(relay.url, {}, stateDir);
    await expect(first.ensureImages([v2.reference], { have: [v1.reference], signal: stop.signal })).rejects.toThrow('daemon stopped');
    const partial = readdirSync(join(stateDir, 'blobs', 'partial'));
    expect(partial).toContain(delta.digest.slice(7));
    const cutAt = relay.down;
    const got = await fetcher(relay.url, {}, stateDir).ensureImages([v2.reference], { have: [v1.reference] });
    expect(got[v2.reference]).toEqual({ imageId: v2.configDigest, delta: { rebuilt: 1, fallbacks: [] } });
    expect(relay.deltaRequests().some((h) => /\r\nrange: bytes=[1-9]\d*-/i.test(h) && /\r\nif-range: "sha256:/i.test(h))).toBe(true);
    // The second run fetched what was missing of the delta, not the delta again.
    expect(relay.down - cutAt).toBeLessThan(delta.size / 2 + 32 * 1024);
  });

  it('names the platform it picked when the images are indexes (the proxy does not guess among an index\'s images)', async () => {
    const [v1, v2] = await pair('p');
    // Another platform's entry in both indexes: the proxy must be told which one the gateway runs.
    const other = await forgeImage(rig.registry, repo, 'p-other', { layers: [base], config: { Cmd: ['true'] } });
    const i1 = await pushIndex('p-1-index', v1, other);
    const i2 = await pushIndex('p-2-index', v2, other);
    const f = fetcher(proxy.url);
    await f.ensureImages([i1], {});
    const got = await f.ensureImages([i2], { have: [i1] });
    expect(got[i2]).toEqual({ imageId: v2.configDigest, delta: { rebuilt: 1, fallbacks: [] } });
  });

  it('refuses a delta with one flipped byte and completes the update with the full layer', async () => {
    const [v1, v2] = await pair('d');
    const f = fetcher(proxy.url);
    await f.ensureImages([v1.reference], {});
    const plan = await settledDeltaPlan({ proxy: proxy.url, request: { target: `rig/${repo}@${v2.manifestDigest}`, have: [`rig/${repo}@${v1.manifestDigest}`] } });
    const delta = plan.layers[1].delta!;
    const file = join(cacheDir, 'deltas', 'blobs', delta.digest.slice(7));
    const bytes = readFileSync(file);
    bytes[bytes.length - 10] ^= 0x01;
    writeFileSync(file, bytes);
    const got = await f.ensureImages([v2.reference], { have: [v1.reference] });
    expect(got[v2.reference].imageId).toBe(v2.configDigest);
    expect(got[v2.reference].delta?.rebuilt).toBe(0);
    expect(got[v2.reference].delta?.fallbacks).toEqual([expect.objectContaining({ layer: v2.layers[1].diffId, reason: 'bad-digest' })]);
  });

  it('takes a layer smaller than a delta exchange in full without asking the proxy for a plan', async () => {
    const small = (v: string): Promise<ForgedImage> => forgeImage(rig.registry, repo, `s-${v}`, { layers: [base, { files: { '/app/version': `${run}:${v}\n` } }], config: { Cmd: ['/bin/sh', '-c', 'sleep 3600'] } });
    const [v1, v2] = [await small('1'), await small('2')];
    expect(v2.layers[1].size).toBeLessThan(DELTA_MIN_LAYER_BYTES);
    const f = fetcher(proxy.url);
    await f.ensureImages([v1.reference], {});
    const relay = await new Relay(proxy.url).start();
    const got = await fetcher(relay.url).ensureImages([v2.reference], { have: [v1.reference] });
    expect(got[v2.reference]).toEqual({ imageId: v2.configDigest });
    expect((await docker.getImage(v2.configDigest).inspect()).RootFS.Layers).toEqual(v2.layers.map((l) => l.diffId));
    expect(relay.heads.filter((h) => h.startsWith('POST /berth/v1/deltas/plan'))).toEqual([]);
    expect(relay.heads.some((h) => h.startsWith(`GET /v2/rig/${repo}/blobs/${v2.layers[1].digest}`))).toBe(true);
  });

  it('fetches the full layer when the base is gone from the engine (and was never in the store)', async () => {
    const [v1, v2] = await pair('e');
    await fetcher(proxy.url).ensureImages([v1.reference], {});
    await docker.getImage(v1.configDigest).remove({ force: true });
    const relay = await new Relay(proxy.url).start();
    const got = await fetcher(relay.url).ensureImages([v2.reference], { have: [v1.reference] });
    expect(got[v2.reference].imageId).toBe(v2.configDigest);
    expect(got[v2.reference].delta?.fallbacks).toEqual([expect.objectContaining({ layer: v2.layers[1].diffId, reason: 'no-base' })]);
    expect(relay.deltaRequests()).toHaveLength(0);
    expect(relay.down).toBeGreaterThan(v2.layers[1].size);
  });
});
