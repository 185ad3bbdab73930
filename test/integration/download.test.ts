import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { createImageFetcher, BlobVerificationError, DiskSpaceError, ImageUnavailableError, type DownloadProgress, type ImageFetcher } from '../../edge-daemon/download/index.js';
import { EngineClient } from '../../edge-daemon/engine/client.js';
import { startRegistryProxy } from '../../registry-proxy/index.js';
import { buildImage, busyboxLayer, forgeImage, pushImage, pseudoRandomBytes, type ForgedImage, type LayerSpec } from '../rig/forge.js';
import { freePort, rigFromEnv } from '../rig/index.js';

const rig = rigFromEnv();
const docker = new Docker({ socketPath: rig.dockerSocket });
const log = createLogger('test-download', { level: process.env.BERTH_TEST_LOG ?? 'warn' });
const run = randomBytes(4).toString('hex');
const deviceId = `dl-${run}`;
const MiB = 1 << 20;
/** Response headers, manifests and configs on top of the blob bytes: generous, far below a layer. */
const SLACK = 64 * 1024;
/** A resumed download may fetch again what it received but had not yet written; far below the 4 MiB cut. */
const RESUME_SLACK = 1024 * 1024;
const cleanups: (() => Promise<void> | void)[] = [];

function listen(server: Server | ReturnType<typeof createServer>): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

/** The real registry proxy, anonymous, mirroring the rig registry under alias `rig`. */
async function startProxy(opts: { listen?: string; cacheDir?: string } = {}): Promise<{ url: string; close(): Promise<void> }> {
  const cacheDir = opts.cacheDir ?? mkdtempSync(join(tmpdir(), 'berth-download-proxy-'));
  const proxy = await startRegistryProxy({
    listen: opts.listen,
    cacheDir,
    upstreams: [{ alias: 'rig', url: rig.registryUrl }],
    anonymous: true,
    log: createLogger('test-proxy', { level: 'error' }),
  });
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await proxy.close();
  };
  cleanups.push(async () => {
    await close();
    if (!opts.cacheDir) rmSync(cacheDir, { recursive: true, force: true });
  });
  return { url: proxy.url, close };
}

interface Relay {
  url: string;
  /** Bytes sent from the proxy to the daemon over all connections. */
  down: number;
  connections: number;
  /** Request heads the daemon sent (to see Range requests). */
  requests: string[];
}

/**
 * A TCP relay in front of the proxy that counts the bytes it passes down and, once, cuts the
 * connection after `cutAfter` bytes (calling `onCut` first), like a link dropping mid-blob.
 */
async function startRelay(target: string, opts: { cutAfter?: number; onCut?: () => void } = {}): Promise<Relay> {
  const { port: targetPort } = new URL(target);
  const relay: Relay = { url: '', down: 0, connections: 0, requests: [] };
  let cut = opts.cutAfter === undefined;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    relay.connections++;
    const upstream = createConnection({ host: '127.0.0.1', port: Number(targetPort) });
    sockets.add(client).add(upstream);
    client.on('data', (chunk: Buffer) => {
      relay.requests.push(chunk.toString('latin1'));
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!cut && relay.down + chunk.length >= opts.cutAfter!) {
        cut = true;
        const head = chunk.subarray(0, opts.cutAfter! - relay.down);
        relay.down += head.length;
        opts.onCut?.();
        client.end(head);
        client.destroy();
        upstream.destroy();
        return;
      }
      relay.down += chunk.length;
      // Backpressure end to end: the count is what the daemon is able to take, not what we queued.
      if (!client.write(chunk)) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
    });
    const close = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  const port = await listen(server);
  relay.url = `http://127.0.0.1:${port}`;
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return relay;
}

/** An HTTP relay that flips one byte in the body of one blob, and counts the requests for it. */
async function startTamperRelay(target: string, digest: string): Promise<{ url: string; hits: number }> {
  const state = { url: '', hits: 0 };
  const server = createHttpServer(async (req, res) => {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host') headers[k] = v;
    const up = await fetch(`${target}${req.url}`, { headers });
    const body = Buffer.from(await up.arrayBuffer());
    if (req.url?.endsWith(`/blobs/${digest}`)) {
      state.hits++;
      body[Math.floor(body.length / 2)] ^= 0xff;
    }
    res.statusCode = up.status;
    for (const h of ['content-type', 'content-range', 'etag', 'docker-content-digest']) {
      const v = up.headers.get(h);
      if (v) res.setHeader(h, v);
    }
    res.end(body);
  });
  const port = await listen(server);
  state.url = `http://127.0.0.1:${port}`;
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return state;
}

/** An HTTP relay that admits only `Bearer <accepted>` and counts the 401s it gives. */
async function startAuthRelay(target: string, accepted: string): Promise<{ url: string; refused: number }> {
  const state = { url: '', refused: 0 };
  const server = createHttpServer(async (req, res) => {
    if (req.url?.startsWith('/v2/') && req.headers.authorization !== `Bearer ${accepted}`) {
      state.refused++;
      res.statusCode = 401;
      res.setHeader('www-authenticate', 'Bearer realm="http://127.0.0.1/token",service="berth-registry-proxy"');
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"token expired"}]}');
      return;
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host') headers[k] = v;
    const up = await fetch(`${target}${req.url}`, { headers });
    res.statusCode = up.status;
    for (const h of ['content-type', 'content-range', 'etag', 'docker-content-digest']) {
      const v = up.headers.get(h);
      if (v) res.setHeader(h, v);
    }
    res.end(Buffer.from(await up.arrayBuffer()));
  });
  const port = await listen(server);
  state.url = `http://127.0.0.1:${port}`;
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return state;
}

function newStateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-download-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function fetcherFor(
  registryProxy: string,
  stateDir: string,
  extra: { diskMarginBytes?: number; device?: string; pullToken?: () => Promise<string>; attempts?: number } = {},
): ImageFetcher {
  const f = createImageFetcher({
    stateDir,
    docker: new EngineClient(rig.dockerHost),
    deviceId: extra.device ?? deviceId,
    registryProxy,
    pullToken: extra.pullToken ?? (async () => 'anonymous'),
    log,
    diskMarginBytes: extra.diskMarginBytes ?? 1 * MiB,
    attempts: extra.attempts,
    backoffBaseMs: 20,
    backoffCapMs: 200,
    idleTimeoutMs: 10_000,
  });
  cleanups.push(() => f.close());
  return f;
}

async function engineHas(id: string): Promise<boolean> {
  try {
    return (await docker.getImage(id).inspect()).Id === id;
  } catch {
    return false;
  }
}

async function tagsOf(id: string): Promise<string[]> {
  return (await docker.getImage(id).inspect()).RepoTags ?? [];
}

const blobFiles = (stateDir: string, kind: 'sha256' | 'partial'): string[] => {
  const dir = join(stateDir, 'blobs', kind);
  return existsSync(dir) ? readdirSync(dir) : [];
};
const hex = (digest: string): string => digest.slice('sha256:'.length);

describe('download channel against the rig (dockerd, registry, proxy)', () => {
  let proxy: string;
  let base: LayerSpec;
  const forge = (name: string, layers: LayerSpec[]): Promise<ForgedImage> =>
    forgeImage(rig.registry, `berth-test/dl-${run}/${name}`, 'v1', { layers, config: { Cmd: ['/bin/sh', '-c', 'sleep 3600'] } });
  const dataLayer = (name: string, size: number): LayerSpec => ({ files: { [`/data/${name}.bin`]: pseudoRandomBytes(size, `${run}:${name}`) } });

  let stateDir: string;
  let imageA: ForgedImage;

  beforeAll(async () => {
    proxy = (await startProxy()).url;
    // The run id in the base layer keeps it unknown to an engine reused from earlier runs.
    base = { files: { ...busyboxLayer().files, '/etc/berth-run': run } };
    stateDir = newStateDir();
  });

  afterAll(async () => {
    // Leave the shared engine as found: untag (and so remove) what these devices pulled.
    await fetcherFor(proxy, newStateDir()).prune([]).catch(() => {});
    await fetcherFor(proxy, newStateDir(), { device: `other-${run}` }).prune([]).catch(() => {});
    for (const c of cleanups.reverse()) await c();
  });

  it('first fetch of a multi-layer image: the engine ends up with it by config digest, tagged for this device', async () => {
    imageA = await forge('a', [base, dataLayer('a', 3 * MiB), { files: { '/etc/a.txt': 'hello' } }]);
    const relay = await startRelay(proxy);
    const fetcher = fetcherFor(relay.url, stateDir);
    const layerBytes = imageA.layers.reduce((n, l) => n + l.size, 0);
    expect(await fetcher.missingBytes([imageA.reference])).toBe(layerBytes);

    const progress: DownloadProgress[] = [];
    const result = await fetcher.ensureImages([imageA.reference], { onProgress: (p) => progress.push(p) });

    expect(result[imageA.reference].imageId).toBe(imageA.configDigest);
    expect(await engineHas(imageA.configDigest)).toBe(true);
    const tags = await tagsOf(imageA.configDigest);
    expect(tags.some((t) => t.startsWith(`berth.local/${deviceId}/berth-test/dl-${run}/a:`))).toBe(true);
    const repoDigests = (await docker.getImage(imageA.configDigest).inspect()).RepoDigests ?? [];
    expect(repoDigests.filter((r) => r.startsWith('127.0.0.1:'))).toEqual([]);
    expect(relay.down).toBeGreaterThanOrEqual(layerBytes);
    expect(relay.down).toBeLessThan(layerBytes + SLACK);
    expect(progress.at(-1)).toEqual({ done: layerBytes, total: layerBytes, full: layerBytes, delta: false, images: { [imageA.reference]: { done: layerBytes, total: layerBytes } } });
    for (const l of imageA.layers) expect(blobFiles(stateDir, 'sha256')).toContain(hex(l.digest));
    expect(await fetcher.missingBytes([imageA.reference])).toBe(0);
  });

  it('a second image sharing the base layer downloads only its new layer, even with an empty store', async () => {
    const imageB = await forge('b', [base, dataLayer('b', 2 * MiB)]);
    const relay = await startRelay(proxy);
    // A fresh store: the base layer is skipped because the engine has it, not because we do.
    const fetcher = fetcherFor(relay.url, newStateDir());
    expect(await fetcher.missingBytes([imageB.reference])).toBe(imageB.layers[1].size);
    relay.down = 0;
    const result = await fetcher.ensureImages([imageB.reference], {});
    expect(result[imageB.reference].imageId).toBe(imageB.configDigest);
    expect(await engineHas(imageB.configDigest)).toBe(true);
    expect(relay.down).toBeGreaterThanOrEqual(imageB.layers[1].size);
    expect(relay.down).toBeLessThan(imageB.layers[1].size + SLACK);
  });

  it('a layer the engine has under another blob digest is fetched on the engine’s demand, verified', async () => {
    // Same files, other compression: same diff_id, different blob digest. The planner skips it
    // (the engine has the chain), but Docker only recognises blob digests it pulled before.
    const recompressed: LayerSpec = { ...base, gzipLevel: 1 };
    const imageI = await forge('i', [recompressed, dataLayer('i', 1 * MiB)]);
    expect(imageI.layers[0].diffId).toBe(imageA.layers[0].diffId);
    expect(imageI.layers[0].digest).not.toBe(imageA.layers[0].digest);
    const relay = await startRelay(proxy);
    const dir = newStateDir();
    const fetcher = fetcherFor(relay.url, dir);
    expect(await fetcher.missingBytes([imageI.reference])).toBe(imageI.layers[1].size);
    const result = await fetcher.ensureImages([imageI.reference], {});
    expect(result[imageI.reference].imageId).toBe(imageI.configDigest);
    expect(await engineHas(imageI.configDigest)).toBe(true);
    expect(blobFiles(dir, 'sha256')).toContain(hex(imageI.layers[0].digest));
  });

  it('a connection cut mid-blob resumes from the partial file and fetches only the rest', async () => {
    const imageC = await forge('c', [base, dataLayer('c', 8 * MiB)]);
    const big = imageC.layers[1];
    const relay = await startRelay(proxy, { cutAfter: 4 * MiB });
    const fetcher = fetcherFor(relay.url, stateDir);
    // What must travel (the big layer; the base too when this test runs alone).
    const missing = await fetcher.missingBytes([imageC.reference]);
    expect(missing).toBeGreaterThanOrEqual(big.size);
    relay.down = 0;
    const result = await fetcher.ensureImages([imageC.reference], {});
    expect(result[imageC.reference].imageId).toBe(imageC.configDigest);
    expect(await engineHas(imageC.configDigest)).toBe(true);
    expect(relay.connections).toBeGreaterThanOrEqual(2);
    expect(relay.requests.some((r) => /\r\nrange: bytes=[1-9]\d*-\r\n/i.test(r) && r.includes(hex(big.digest)))).toBe(true);
    // Without resume the cut 4 MiB would travel twice. What arrived after the last write to the
    // partial file (a stream buffer or two, more on a loaded machine) travels again; RESUME_SLACK.
    expect(relay.down).toBeGreaterThanOrEqual(missing);
    expect(relay.down).toBeLessThan(missing + RESUME_SLACK);
  });

  it('a proxy restart mid-blob: the download waits for it and resumes from the partial file', async () => {
    const imageR = await forge('r', [base, dataLayer('r', 8 * MiB)]);
    const big = imageR.layers[1];
    const cacheDir = newStateDir();
    const port = await freePort();
    let current = await startProxy({ listen: `127.0.0.1:${port}`, cacheDir });
    let restarted: Promise<void> | undefined;
    const relay = await startRelay(current.url, {
      cutAfter: 4 * MiB,
      onCut: () => {
        restarted = (async () => {
          await current.close();
          current = await startProxy({ listen: `127.0.0.1:${port}`, cacheDir });
        })();
      },
    });
    const fetcher = fetcherFor(relay.url, newStateDir(), { attempts: 30 });
    const missing = await fetcher.missingBytes([imageR.reference]);
    expect(missing).toBeGreaterThanOrEqual(big.size);
    relay.down = 0;
    const result = await fetcher.ensureImages([imageR.reference], {});
    await restarted;
    expect(restarted).toBeDefined();
    expect(result[imageR.reference].imageId).toBe(imageR.configDigest);
    expect(relay.requests.some((r) => /\r\nrange: bytes=[1-9]\d*-\r\n/i.test(r) && r.includes(hex(big.digest)))).toBe(true);
    expect(relay.down).toBeGreaterThanOrEqual(missing);
    expect(relay.down).toBeLessThan(missing + RESUME_SLACK);
  });

  it('a download interrupted by a daemon stop resumes in a new fetcher on the same state dir', async () => {
    const imageD = await forge('d', [base, dataLayer('d', 8 * MiB)]);
    const big = imageD.layers[1];
    const dir = newStateDir();
    const stop = new AbortController();
    const first = await startRelay(proxy, { cutAfter: 3 * MiB, onCut: () => stop.abort(new Error('daemon stopped')) });
    const before = fetcherFor(first.url, dir);
    await expect(before.ensureImages([imageD.reference], { signal: stop.signal })).rejects.toThrow();
    await before.close();
    const partial = join(dir, 'blobs', 'partial', hex(big.digest));
    const onDisk = statSync(partial).size;
    expect(onDisk).toBeGreaterThan(0);
    expect(onDisk).toBeLessThan(big.size);
    expect(await engineHas(imageD.configDigest)).toBe(false);

    const second = await startRelay(proxy);
    const after = fetcherFor(second.url, dir);
    // The base layer comes from the engine (chain of image A); only the rest of the big one travels.
    expect(await after.missingBytes([imageD.reference])).toBe(big.size - onDisk);
    second.down = 0;
    const result = await after.ensureImages([imageD.reference], {});
    expect(result[imageD.reference].imageId).toBe(imageD.configDigest);
    expect(second.requests.some((r) => r.toLowerCase().includes(`range: bytes=${onDisk}-`))).toBe(true);
    expect(second.down).toBeGreaterThanOrEqual(big.size - onDisk);
    expect(second.down).toBeLessThan(big.size - onDisk + SLACK);
    expect(existsSync(partial)).toBe(false);
  });

  it('a complete partial file is verified and used; a wrong one is discarded and fetched again', async () => {
    const built = await buildImage({ layers: [base, dataLayer('p', 2 * MiB), dataLayer('q', 2 * MiB)] });
    const imageP = await pushImage(rig.registry, `berth-test/dl-${run}/p`, 'v1', built);
    const [, good, bad] = built.layers;
    const dir = newStateDir();
    mkdirSync(join(dir, 'blobs', 'partial'), { recursive: true });
    // A crash between the last write and the rename: the whole blob is there, unrenamed.
    writeFileSync(join(dir, 'blobs', 'partial', hex(good.digest)), good.blob);
    // A partial file whose bytes are not this blob's prefix (disk trouble): resumed, then refused.
    writeFileSync(join(dir, 'blobs', 'partial', hex(bad.digest)), pseudoRandomBytes(256 * 1024, `${run}:garbage`));
    const relay = await startRelay(proxy);
    const fetcher = fetcherFor(relay.url, dir);
    const result = await fetcher.ensureImages([imageP.reference], {});
    expect(result[imageP.reference].imageId).toBe(imageP.configDigest);
    expect(await engineHas(imageP.configDigest)).toBe(true);
    const blobRequests = (digest: string): number => relay.requests.filter((r) => r.includes(`/blobs/${digest}`)).length;
    expect(blobRequests(good.digest)).toBe(0);
    // The resumed tail, then the whole blob from zero.
    expect(blobRequests(bad.digest)).toBe(2);
    expect(relay.down).toBeGreaterThanOrEqual(2 * bad.size - 256 * 1024);
    expect(relay.down).toBeLessThan(2 * bad.size + SLACK);
    expect(blobFiles(dir, 'partial')).toEqual([]);
  });

  it('a tampered blob is refused after one fresh retry and never reaches the engine', async () => {
    const imageE = await forge('e', [base, dataLayer('e', 1 * MiB)]);
    const bad = imageE.layers[1];
    const tamper = await startTamperRelay(proxy, bad.digest);
    const dir = newStateDir();
    const fetcher = fetcherFor(tamper.url, dir);
    const err = await fetcher.ensureImages([imageE.reference], {}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BlobVerificationError);
    expect((err as BlobVerificationError).digest).toBe(bad.digest);
    expect((err as Error).message).toContain(imageE.reference);
    expect(tamper.hits).toBe(2);
    expect(await engineHas(imageE.configDigest)).toBe(false);
    expect(blobFiles(dir, 'sha256')).not.toContain(hex(bad.digest));
    expect(blobFiles(dir, 'partial')).not.toContain(hex(bad.digest));
  });

  it('asks once for a fresh pull token on 401, and names the image when the proxy keeps refusing', async () => {
    const imageJ = await forge('j', [base, dataLayer('j', 256 * 1024)]);
    const relay = await startAuthRelay(proxy, 'fresh');
    let calls = 0;
    const renewing = fetcherFor(relay.url, newStateDir(), { pullToken: async () => (++calls === 1 ? 'expired' : 'fresh') });
    const result = await renewing.ensureImages([imageJ.reference], {});
    expect(result[imageJ.reference].imageId).toBe(imageJ.configDigest);
    expect(relay.refused).toBe(1);

    const imageK = await forge('k', [base, dataLayer('k', 256 * 1024)]);
    const refused = fetcherFor(relay.url, newStateDir(), { pullToken: async () => 'revoked' });
    await expect(refused.ensureImages([imageK.reference], {})).rejects.toThrow(new RegExp(`pull token.*${imageK.reference.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    expect(await engineHas(imageK.configDigest)).toBe(false);
  });

  it('names the image the proxy does not have, and one from a registry it does not mirror', async () => {
    const fetcher = fetcherFor(proxy, newStateDir());
    const gone = `${rig.registry}/berth-test/dl-${run}/a@sha256:${'0'.repeat(64)}`;
    const err = await fetcher.ensureImages([gone], {}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ImageUnavailableError);
    expect((err as ImageUnavailableError).image).toBe(gone);
    const foreign = `registry.example.com/acme/app@sha256:${'1'.repeat(64)}`;
    await expect(fetcher.ensureImages([foreign], {})).rejects.toThrow(`image ${foreign}: registry registry.example.com is not mirrored`);
  });

  it('refuses a download that does not fit, having written nothing', async () => {
    const imageF = await forge('f', [base, dataLayer('f', 1 * MiB)]);
    const dir = newStateDir();
    const fetcher = fetcherFor(proxy, dir, { diskMarginBytes: 2 ** 52 });
    const err = await fetcher.ensureImages([imageF.reference], {}).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(DiskSpaceError);
    const e = err as DiskSpaceError;
    expect(e.needed).toBeGreaterThanOrEqual(2 ** 52 + imageF.layers[1].size);
    expect(e.free).toBeGreaterThan(0);
    expect(e.free).toBeLessThan(e.needed);
    expect(readdirSync(dir)).toEqual([]);
    expect(await engineHas(imageF.configDigest)).toBe(false);
  });

  it('prune keeps the kept images’ blobs and tags, removes the rest, and leaves other devices’ tags alone', async () => {
    const imageG = await forge('g', [base, dataLayer('g', 1 * MiB)]);
    const imageH = await forge('h', [base, dataLayer('h', 1 * MiB)]);
    const fetcher = fetcherFor(proxy, stateDir);
    await fetcher.ensureImages([imageA.reference, imageG.reference, imageH.reference], {});
    // Another daemon on this engine holds image H too.
    const other = fetcherFor(proxy, newStateDir(), { device: `other-${run}` });
    await other.ensureImages([imageH.reference], {});

    await fetcher.prune([imageA.reference]);

    const kept = new Set([hex(imageA.manifestDigest), hex(imageA.configDigest), ...imageA.layers.map((l) => hex(l.digest))]);
    expect(new Set(blobFiles(stateDir, 'sha256'))).toEqual(kept);
    expect(await engineHas(imageA.configDigest)).toBe(true);
    expect(await engineHas(imageG.configDigest)).toBe(false);
    const hTags = await tagsOf(imageH.configDigest);
    expect(hTags.some((t) => t.startsWith(`berth.local/other-${run}/`))).toBe(true);
    expect(hTags.some((t) => t.startsWith(`berth.local/${deviceId}/`))).toBe(false);
    // A later ensure of a pruned image fetches it again.
    expect(await fetcher.missingBytes([imageG.reference])).toBe(imageG.layers[1].size);
  });
});
