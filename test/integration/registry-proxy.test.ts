import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MANIFEST_ACCEPT } from '../../common/oci.js';
import { startRegistryProxy, type RunningProxy } from '../../registry-proxy/index.js';
import { rigFromEnv } from '../rig/index.js';
import { forgeImage, pseudoRandomBytes, type ForgedImage } from '../rig/forge.js';

/**
 * The registry proxy in anonymous mode against the rig's real CNCF registry, reached through an
 * HTTP relay that counts blob requests and can cut a transfer or play dead.
 */

interface Relay {
  url: string;
  /** Range header (or '' for none) of every upstream GET per blob digest. */
  blobGets: Map<string, string[]>;
  /** Cut the next GET of this digest after this many body bytes. */
  cutNext(digest: string, afterBytes: number): void;
  /** Pause the next GET of this digest after this many body bytes until the returned function is called. */
  holdNext(digest: string, afterBytes: number): () => void;
  setDown(down: boolean): void;
  close(): Promise<void>;
}

async function startRelay(targetUrl: string): Promise<Relay> {
  const target = new URL(targetUrl);
  const blobGets = new Map<string, string[]>();
  const cuts = new Map<string, number>();
  const holds = new Map<string, { after: number; released: Promise<void> }>();
  let down = false;
  const server: Server = createServer((req, res) => {
    if (down) {
      req.socket.destroy();
      return;
    }
    const m = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? '');
    const cutAfter = m && req.method === 'GET' ? cuts.get(m[1]) : undefined;
    const hold = m && req.method === 'GET' ? holds.get(m[1]) : undefined;
    if (m && req.method === 'GET') {
      blobGets.set(m[1], [...(blobGets.get(m[1]) ?? []), String(req.headers.range ?? '')]);
      cuts.delete(m[1]);
      holds.delete(m[1]);
    }
    const headers: IncomingHttpHeaders = { ...req.headers, host: target.host };
    const up = httpRequest({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      if (hold) {
        let passed = 0;
        let held = false;
        ur.on('data', (chunk: Buffer) => {
          passed += chunk.length;
          res.write(chunk);
          if (!held && passed >= hold.after) {
            held = true;
            ur.pause();
            void hold.released.then(() => ur.resume());
          }
        });
        ur.on('end', () => res.end());
        return;
      }
      if (cutAfter === undefined) {
        ur.pipe(res);
        return;
      }
      let passed = 0;
      ur.on('data', (chunk: Buffer) => {
        const room = cutAfter - passed;
        if (room <= 0) return;
        passed += chunk.length;
        res.write(chunk.subarray(0, room));
        if (passed >= cutAfter) {
          ur.destroy();
          res.destroy();
        }
      });
      ur.on('end', () => res.end());
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    blobGets,
    cutNext: (digest, afterBytes) => cuts.set(digest, afterBytes),
    holdNext: (digest, afterBytes) => {
      let release!: () => void;
      holds.set(digest, { after: afterBytes, released: new Promise<void>((r) => { release = r; }) });
      return release;
    },
    setDown: (d) => { down = d; },
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

const sha = (b: Uint8Array): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

async function getBytes(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const res = await fetch(url, { headers });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

async function ociError(res: Response): Promise<string> {
  const body = (await res.json()) as { errors: { code: string }[] };
  return body.errors[0].code;
}

describe('registry proxy (anonymous, rig registry as upstream)', () => {
  const rig = rigFromEnv();
  const cacheDir = mkdtempSync(join(tmpdir(), 'berth-proxy-cache-'));
  let relay: Relay;
  let proxy: RunningProxy;
  let image: ForgedImage;
  let big: Buffer;
  let bigDigest: string;
  const repo = `proxy-core-${process.pid}`;

  beforeAll(async () => {
    big = pseudoRandomBytes(12 << 20, `${repo}-big`);
    image = await forgeImage(rig.registry, repo, 'v1', {
      layers: [{ files: { '/hello.txt': 'hello through the proxy\n' } }, { files: { '/big.bin': big } }],
      config: { Cmd: ['/bin/true'] },
    });
    bigDigest = image.layers[1].digest;
    relay = await startRelay(rig.registryUrl);
    proxy = await startRegistryProxy({ cacheDir, upstreams: [{ alias: 'rig', url: relay.url }], anonymous: true, tagTtlMs: 0, upstream: { attempts: 2, backoffMs: 50 }, fetch: { attempts: 4, backoffMs: 50, stallMs: 10_000 } });
  });

  afterAll(async () => {
    await proxy?.close();
    await relay?.close();
    rmSync(cacheDir, { recursive: true, force: true });
  });

  it('answers the base endpoint, health and its upstream list', async () => {
    const base = await fetch(`${proxy.url}/v2/`);
    expect(base.status).toBe(200);
    expect(base.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
    const ups = (await (await fetch(`${proxy.url}/berth/v1/upstreams`)).json()) as { upstreams: { alias: string; url: string; host: string }[] };
    expect(ups.upstreams).toEqual([{ alias: 'rig', url: relay.url, host: new URL(relay.url).host }]);
    expect((await fetch(`${proxy.url}/healthz`)).status).toBe(200);
  });

  it('serves a manifest by tag and by digest with its exact bytes and headers', async () => {
    const byTag = await getBytes(`${proxy.url}/v2/rig/${repo}/manifests/v1`, { accept: MANIFEST_ACCEPT });
    expect(byTag.status).toBe(200);
    expect(sha(byTag.body)).toBe(image.manifestDigest);
    expect(byTag.headers.get('docker-content-digest')).toBe(image.manifestDigest);
    expect(byTag.headers.get('content-type')).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(byTag.headers.get('content-length')).toBe(String(byTag.body.length));
    const byDigest = await getBytes(`${proxy.url}/v2/rig/${repo}/manifests/${image.manifestDigest}`);
    expect(byDigest.body.equals(byTag.body)).toBe(true);
    const head = await fetch(`${proxy.url}/v2/rig/${repo}/manifests/${image.manifestDigest}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(byTag.body.length));
    const notAccepted = await fetch(`${proxy.url}/v2/rig/${repo}/manifests/v1`, { headers: { accept: 'application/vnd.docker.distribution.manifest.list.v2+json' } });
    expect(notAccepted.status).toBe(404);
    expect(await ociError(notAccepted)).toBe('MANIFEST_UNKNOWN');
  });

  it('shares one upstream fetch among concurrent clients and streams it to all of them', async () => {
    const results = await Promise.all(Array.from({ length: 6 }, () => getBytes(`${proxy.url}/v2/rig/${repo}/blobs/${bigDigest}`)));
    for (const r of results) {
      expect(r.status).toBe(200);
      expect(r.body.length).toBe(image.layers[1].size);
      expect(sha(r.body)).toBe(bigDigest);
    }
    expect(relay.blobGets.get(bigDigest)).toEqual(['']);
    expect(await proxy.cache.onDisk(bigDigest)).toBe(true);
  });

  it('serves a later client a range of what has arrived while the upstream fetch is still running', async () => {
    const layer = pseudoRandomBytes(8 << 20, `${repo}-tail`);
    const img = await forgeImage(rig.registry, repo, 'tail', { layers: [{ files: { '/t.bin': layer } }], gzipLevel: 0 });
    const digest = img.layers[0].digest;
    const whole = (await getBytes(`${rig.registryUrl}/v2/${repo}/blobs/${digest}`)).body;
    const release = relay.holdNext(digest, 3 << 20);
    const first = getBytes(`${proxy.url}/v2/rig/${repo}/blobs/${digest}`);
    // The upstream stalls after 3 MiB until released: a range inside them must come back anyway
    // (were it served only from the finished blob, this request would hang and the test time out).
    const early = await getBytes(`${proxy.url}/v2/rig/${repo}/blobs/${digest}`, { range: 'bytes=1000-1048575' });
    expect(early.status).toBe(206);
    expect(early.body.equals(whole.subarray(1000, 1 << 20))).toBe(true);
    expect(await proxy.cache.onDisk(digest)).toBe(false);
    release();
    const done = await first;
    expect(sha(done.body)).toBe(digest);
    expect(relay.blobGets.get(digest)).toEqual(['']);
  });

  it('serves Range, suffix ranges, 416 and If-Range on a cached blob', async () => {
    const size = image.layers[1].size;
    const whole = (await getBytes(`${proxy.url}/v2/rig/${repo}/blobs/${bigDigest}`)).body;
    const url = `${proxy.url}/v2/rig/${repo}/blobs/${bigDigest}`;
    const mid = await getBytes(url, { range: 'bytes=1000-1999999' });
    expect(mid.status).toBe(206);
    expect(mid.headers.get('content-range')).toBe(`bytes 1000-1999999/${size}`);
    expect(mid.body.equals(whole.subarray(1000, 2_000_000))).toBe(true);
    const tail = await getBytes(url, { range: 'bytes=-100' });
    expect(tail.status).toBe(206);
    expect(tail.body.equals(whole.subarray(size - 100))).toBe(true);
    const resume = await getBytes(url, { range: `bytes=${Math.floor(size * 0.9)}-`, 'if-range': `"${bigDigest}"` });
    expect(resume.status).toBe(206);
    expect(resume.body.equals(whole.subarray(Math.floor(size * 0.9)))).toBe(true);
    const stale = await getBytes(url, { range: 'bytes=0-9', 'if-range': '"sha256:0000"' });
    expect(stale.status).toBe(200);
    expect(stale.body.length).toBe(size);
    const beyond = await fetch(url, { headers: { range: `bytes=${size}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe(`bytes */${size}`);
    await beyond.arrayBuffer();
    expect(relay.blobGets.get(bigDigest)).toHaveLength(1);
  });

  it('resumes an interrupted upstream fetch from its partial file with Range', async () => {
    const layer = pseudoRandomBytes(6 << 20, `${repo}-resume`);
    const img = await forgeImage(rig.registry, repo, 'resume', { layers: [{ files: { '/r.bin': layer } }] });
    const digest = img.layers[0].digest;
    relay.cutNext(digest, 2 << 20);
    const got = await getBytes(`${proxy.url}/v2/rig/${repo}/blobs/${digest}`);
    expect(got.status).toBe(200);
    expect(sha(got.body)).toBe(digest);
    const gets = relay.blobGets.get(digest) ?? [];
    expect(gets).toHaveLength(2);
    expect(gets[0]).toBe('');
    const resumedFrom = Number(/^bytes=(\d+)-$/.exec(gets[1])?.[1]);
    expect(resumedFrom).toBeGreaterThan(0);
    expect(resumedFrom).toBeLessThanOrEqual(2 << 20);
  });

  it('resumes from a partial file left by an earlier process', async () => {
    const layer = pseudoRandomBytes(3 << 20, `${repo}-restart`);
    const img = await forgeImage(rig.registry, repo, 'restart', { layers: [{ files: { '/s.bin': layer } }] });
    const digest = img.layers[0].digest;
    const blob = (await getBytes(`${rig.registryUrl}/v2/${repo}/blobs/${digest}`)).body;
    // What a proxy killed mid-download leaves on disk: the first bytes, in order.
    writeFileSync(join(cacheDir, 'partial', digest.slice('sha256:'.length)), blob.subarray(0, 1_000_000));
    const got = await getBytes(`${proxy.url}/v2/rig/${repo}/blobs/${digest}`);
    expect(sha(got.body)).toBe(digest);
    expect(relay.blobGets.get(digest)).toEqual(['bytes=1000000-']);
  });

  it('refuses malformed names, digests and paths with OCI errors', async () => {
    const cases: [string, number, string][] = [
      [`/v2/rig/${repo}/blobs/sha256:xyz`, 400, 'DIGEST_INVALID'],
      [`/v2/rig/${repo}/blobs/md5:d41d8cd98f00b204e9800998ecf8427e`, 400, 'DIGEST_INVALID'],
      ['/v2/rig/UPPER/manifests/v1', 400, 'NAME_INVALID'],
      ['/v2/rig/%2e%2e/manifests/v1', 400, 'NAME_INVALID'],
      ['/v2/rig//x/manifests/v1', 400, 'NAME_INVALID'],
      ['/v2/rig/a%2Fb/manifests/v1', 400, 'NAME_INVALID'],
      ['/v2/nosuch/app/manifests/v1', 404, 'NAME_UNKNOWN'],
      ['/v2/app/manifests/v1', 404, 'NAME_UNKNOWN'],
      [`/v2/rig/${repo}/manifests/nosuchtag`, 404, 'MANIFEST_UNKNOWN'],
      [`/v2/rig/${repo}/blobs/sha256:${'0'.repeat(64)}`, 404, 'BLOB_UNKNOWN'],
    ];
    for (const [path, status, code] of cases) {
      const res = await fetch(`${proxy.url}${path}`);
      expect({ path, status: res.status, code: await ociError(res) }).toEqual({ path, status, code });
    }
    // A raw dot segment, sent as is (fetch would normalize it away).
    const raw = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const u = new URL(proxy.url);
      const req = httpRequest({ host: u.hostname, port: u.port, path: `/v2/rig/${repo}/../../etc/manifests/v1`, method: 'GET' }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => { body += c.toString(); });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(raw.status).toBe(400);
    expect(JSON.parse(raw.body).errors[0].code).toBe('NAME_INVALID');
    const put = await fetch(`${proxy.url}/v2/rig/${repo}/manifests/v1`, { method: 'PUT', body: '{}' });
    expect(put.status).toBe(405);
    expect(await ociError(put)).toBe('UNSUPPORTED');
  });

  it('keeps serving cached digests, and tags from their last known digest, when the upstream is down', async () => {
    await getBytes(`${proxy.url}/v2/rig/${repo}/blobs/${image.configDigest}`);
    await proxy.close();
    relay.setDown(true);
    try {
      // A restart in between: the cache lives on disk.
      proxy = await startRegistryProxy({ cacheDir, upstreams: [{ alias: 'rig', url: relay.url }], anonymous: true, tagTtlMs: 0, upstream: { attempts: 2, backoffMs: 20 } });
      const m = await getBytes(`${proxy.url}/v2/rig/${repo}/manifests/${image.manifestDigest}`);
      expect(m.status).toBe(200);
      expect(sha(m.body)).toBe(image.manifestDigest);
      const tag = await getBytes(`${proxy.url}/v2/rig/${repo}/manifests/v1`);
      expect(tag.status).toBe(200);
      expect(tag.headers.get('x-berth-stale')).toBe('true');
      expect(sha(tag.body)).toBe(image.manifestDigest);
      const blob = await getBytes(`${proxy.url}/v2/rig/${repo}/blobs/${bigDigest}`, { range: 'bytes=0-1023' });
      expect(blob.status).toBe(206);
      expect(blob.body.length).toBe(1024);
      const missing = await fetch(`${proxy.url}/v2/rig/${repo}/blobs/${image.layers[0].digest}`);
      expect(missing.status).toBe(503);
      await missing.arrayBuffer();
      const unknownTag = await fetch(`${proxy.url}/v2/rig/${repo}/manifests/never-resolved`);
      expect(unknownTag.status).toBe(503);
      await unknownTag.arrayBuffer();
    } finally {
      relay.setDown(false);
    }
    const fresh = await getBytes(`${proxy.url}/v2/rig/${repo}/manifests/v1`);
    expect(fresh.headers.get('x-berth-stale')).toBeNull();
  });

  it('evicts least recently used blobs over the size limit, never one being served', async () => {
    const sizes = 4 << 20;
    // The held blob is far larger than what loopback socket buffers absorb from a client that does not read.
    const heldSize = 24 << 20;
    const limit = heldSize + sizes + (2 << 20);
    const imgs = await Promise.all(['a', 'b', 'c', 'd'].map((k) => forgeImage(rig.registry, `${repo}-lru`, k, { layers: [{ files: { [`/${k}.bin`]: pseudoRandomBytes(k === 'a' ? heldSize : sizes, `${repo}-lru-${k}`) } }], gzipLevel: 0 })));
    const [a, b, c, d] = imgs.map((i) => i.layers[0].digest);
    const lruDir = mkdtempSync(join(tmpdir(), 'berth-proxy-lru-'));
    const small = await startRegistryProxy({ cacheDir: lruDir, upstreams: [{ alias: 'rig', url: relay.url }], anonymous: true, cacheMaxBytes: limit });
    try {
      const url = (digest: string) => `${small.url}/v2/rig/${repo}-lru/blobs/${digest}`;
      await getBytes(url(a));
      // A slow client holds blob a open: it does not read, so the proxy's writes wait on it.
      const held = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
        const u = new URL(url(a));
        httpRequest({ host: u.hostname, port: u.port, path: u.pathname }, resolve).on('error', reject).end();
      });
      held.pause();
      await getBytes(url(b));
      await getBytes(url(c));
      expect(await small.cache.onDisk(a)).toBe(true);
      expect(await small.cache.onDisk(b)).toBe(false);
      expect(await small.cache.onDisk(c)).toBe(true);
      const chunks: Buffer[] = [];
      held.on('data', (ch: Buffer) => chunks.push(ch));
      held.resume();
      await new Promise((r) => held.on('end', r));
      expect(sha(Buffer.concat(chunks))).toBe(a);
      await getBytes(url(d));
      expect(await small.cache.onDisk(a)).toBe(false);
      expect(await small.cache.onDisk(c)).toBe(true);
      expect(await small.cache.onDisk(d)).toBe(true);
      expect(small.cache.sizeBytes).toBeLessThanOrEqual(limit);
    } finally {
      await small.close();
      rmSync(lruDir, { recursive: true, force: true });
    }
  });

  it('exposes Prometheus metrics', async () => {
    const text = await (await fetch(`${proxy.url}/metrics`)).text();
    expect(text).toMatch(/^# TYPE berth_proxy_cache_size_bytes gauge$/m);
    const size = Number(/^berth_proxy_cache_size_bytes (\d+)$/m.exec(text)?.[1]);
    expect(size).toBeGreaterThanOrEqual(image.layers[1].size);
    expect(text).toMatch(/^berth_proxy_served_bytes_total\{kind="blob"\} \d+$/m);
  });

  it('lists the upstream tags of a repository', async () => {
    const res = await fetch(`${proxy.url}/v2/rig/${repo}/tags/list`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { name: string; tags: string[] };
    expect(body.name).toBe(`rig/${repo}`);
    expect(body.tags).toEqual(expect.arrayContaining(['v1', 'resume']));
  });
});
