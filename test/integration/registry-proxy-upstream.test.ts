import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MEDIA } from '../../common/oci.js';
import { startRegistryProxy, type RunningProxy } from '../../registry-proxy/index.js';
import { forgeImage, pseudoRandomBytes } from '../rig/forge.js';
import { rigFromEnv, startRegistry } from '../rig/index.js';

/** Upstreams that need credentials, redirect, or lie: the proxy's side of the registry protocols. */

const sha = (b: Uint8Array): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const stop = (s: Server | undefined) => new Promise<void>((r) => { if (!s) return r(); s.closeAllConnections(); s.close(() => r()); });

/** Forwards a request to `target` (only the headers a registry read needs). */
async function relay(target: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const headers: Record<string, string> = {};
  for (const h of ['accept', 'range']) if (req.headers[h]) headers[h] = String(req.headers[h]);
  const up = await fetch(`${target}${req.url}`, { method: req.method, headers });
  const out: Record<string, string> = {};
  up.headers.forEach((v, k) => { out[k] = v; });
  res.writeHead(up.status, out);
  if (up.body) Readable.fromWeb(up.body as import('node:stream/web').ReadableStream).pipe(res);
  else res.end();
}

async function code(res: Response): Promise<string> {
  return ((await res.json()) as { errors: { code: string }[] }).errors[0].code;
}

describe('registry proxy upstream protocols', () => {
  const rig = rigFromEnv();
  const dirs: string[] = [];
  const proxies: RunningProxy[] = [];
  const servers: Server[] = [];
  const repo = `proxy-up-${process.pid}`;

  async function proxyFor(upstreams: Parameters<typeof startRegistryProxy>[0]['upstreams']): Promise<RunningProxy> {
    const cacheDir = mkdtempSync(join(tmpdir(), 'berth-proxy-up-'));
    dirs.push(cacheDir);
    const p = await startRegistryProxy({ cacheDir, upstreams, anonymous: true, upstream: { attempts: 2, backoffMs: 20 }, fetch: { attempts: 2, backoffMs: 20, stallMs: 5000 } });
    proxies.push(p);
    return p;
  }

  afterAll(async () => {
    for (const p of proxies) await p.close();
    for (const s of servers) await stop(s);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  describe('basic auth (htpasswd registry)', () => {
    let reg: Awaited<ReturnType<typeof startRegistry>>;
    const user = 'mirror';
    const password = randomBytes(12).toString('hex');
    beforeAll(async () => {
      reg = await startRegistry({ htpasswd: { user, password } });
    });
    afterAll(async () => { await reg?.stop(); });

    it('pulls with the configured credentials and explains a refusal without them', async () => {
      const img = await forgeImage(reg.registry, repo, 'v1', { layers: [{ files: { '/basic.txt': 'basic\n' } }], auth: { user, password } });
      const withCreds = await proxyFor([{ alias: 'sec', url: reg.registryUrl, credentials: { username: user, password } }]);
      const m = await fetch(`${withCreds.url}/v2/sec/${repo}/manifests/v1`);
      expect(m.status).toBe(200);
      expect(sha(Buffer.from(await m.arrayBuffer()))).toBe(img.manifestDigest);
      const b = await fetch(`${withCreds.url}/v2/sec/${repo}/blobs/${img.layers[0].digest}`);
      expect(sha(Buffer.from(await b.arrayBuffer()))).toBe(img.layers[0].digest);

      const without = await proxyFor([{ alias: 'sec', url: reg.registryUrl }]);
      const refused = await fetch(`${without.url}/v2/sec/${repo}/manifests/v1`);
      expect(refused.status).toBe(502);
      expect(await code(refused)).toBe('UPSTREAM_ERROR');
      const wrong = await proxyFor([{ alias: 'sec', url: reg.registryUrl, credentials: { username: user, password: 'wrong' } }]);
      const res = await fetch(`${wrong.url}/v2/sec/${repo}/manifests/v1`);
      expect(res.status).toBe(502);
      await res.arrayBuffer();
    });
  });

  describe('bearer-token challenge with a redirect to blob storage', () => {
    const user = 'robot';
    const password = randomBytes(12).toString('hex');
    let secret = randomBytes(16).toString('hex');
    let tokenRequests = 0;
    const scopesAsked: string[] = [];
    const authAtStorage: (string | undefined)[] = [];
    let front: string;

    beforeAll(async () => {
      const storage = await listen((req, res) => {
        authAtStorage.push(req.headers.authorization);
        void relay(rig.registryUrl, req, res).catch(() => res.destroy());
      });
      servers.push(storage.server);
      const f = await listen((req, res) => {
        const url = new URL(req.url ?? '/', 'http://x');
        if (url.pathname === '/token') {
          tokenRequests++;
          scopesAsked.push(url.searchParams.get('scope') ?? '');
          if (req.headers.authorization !== 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64')) {
            res.writeHead(401).end();
            return;
          }
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: secret, expires_in: 300 }));
          return;
        }
        if (req.headers.authorization !== `Bearer ${secret}`) {
          const m = /^\/v2\/(.+)\/(manifests|blobs)\//.exec(url.pathname);
          res.writeHead(401, { 'www-authenticate': `Bearer realm="${front}/token",service="front"${m ? `,scope="repository:${m[1]}:pull"` : ''}`, 'content-type': 'application/json' });
          res.end('{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}');
          return;
        }
        if (/\/blobs\//.test(url.pathname)) {
          res.writeHead(307, { location: `${storage.url}${req.url}` }).end();
          return;
        }
        void relay(rig.registryUrl, req, res).catch(() => res.destroy());
      });
      servers.push(f.server);
      front = f.url;
    });

    it('fetches a token from the realm, caches it, renews it on 401, and keeps it from blob storage', async () => {
      const img = await forgeImage(rig.registry, repo, 'bearer', { layers: [{ files: { '/bearer.txt': 'bearer\n' } }] });
      const proxy = await proxyFor([{ alias: 'tok', url: front, credentials: { username: user, password } }]);
      const m = await fetch(`${proxy.url}/v2/tok/${repo}/manifests/bearer`);
      expect(m.status).toBe(200);
      expect(m.headers.get('docker-content-digest')).toBe(img.manifestDigest);
      await m.arrayBuffer();
      const b = await fetch(`${proxy.url}/v2/tok/${repo}/blobs/${img.layers[0].digest}`);
      expect(b.status).toBe(200);
      expect(sha(Buffer.from(await b.arrayBuffer()))).toBe(img.layers[0].digest);
      expect(tokenRequests).toBe(1);
      expect(scopesAsked[0]).toBe(`repository:${repo}:pull`);
      expect(authAtStorage).toEqual([undefined]);

      secret = randomBytes(16).toString('hex');
      const c = await fetch(`${proxy.url}/v2/tok/${repo}/blobs/${img.configDigest}`);
      expect(c.status).toBe(200);
      expect(sha(Buffer.from(await c.arrayBuffer()))).toBe(img.configDigest);
      expect(tokenRequests).toBe(2);
    });
  });

  describe('an upstream that sends the wrong bytes', () => {
    const good = pseudoRandomBytes(3 << 20, 'tamper-good');
    const digest = sha(good);
    const small = Buffer.from('the config a tamperer swapped');
    const smallDigest = sha(Buffer.from('the config as published'));
    const manifestDigest = sha(Buffer.from('{"the":"real manifest"}'));
    let proxy: RunningProxy;

    beforeAll(async () => {
      const evil = await listen((req, res) => {
        const url = req.url ?? '';
        if (url === '/v2/' || url === '/v2') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        if (url.endsWith(`/blobs/${digest}`)) {
          const bad = Buffer.from(good);
          bad[bad.length - 10] ^= 0xff;
          return void res.writeHead(200, { 'content-length': String(bad.length) }).end(bad);
        }
        if (url.endsWith(`/blobs/${smallDigest}`)) return void res.writeHead(200, { 'content-length': String(small.length) }).end(small);
        if (url.endsWith(`/manifests/${manifestDigest}`)) {
          return void res.writeHead(200, { 'content-type': MEDIA.ociManifest }).end('{"schemaVersion":2,"layers":[],"config":{"digest":"' + digest + '","size":1}}');
        }
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NOT_FOUND","message":"no"}]}');
      });
      servers.push(evil.server);
      proxy = await proxyFor([{ alias: 'evil', url: evil.url }]);
    });

    it('refuses a tampered blob and does not cache it', async () => {
      for (let i = 0; i < 2; i++) {
        const res = await fetch(`${proxy.url}/v2/evil/app/blobs/${digest}`);
        const body = await res.arrayBuffer().then((b) => Buffer.from(b), () => null);
        // Either an error status, or a body cut short: never a complete 200 of the wrong bytes.
        expect(res.status !== 200 || body === null || sha(body) === digest).toBe(true);
        expect(body !== null && res.status === 200 && body.length === good.length).toBe(false);
      }
      const res = await fetch(`${proxy.url}/v2/evil/app/blobs/${smallDigest}`);
      expect(res.status).toBe(502);
      expect(await code(res)).toBe('UPSTREAM_DIGEST_MISMATCH');
      expect(await proxy.cache.onDisk(digest)).toBe(false);
      expect(await proxy.cache.onDisk(smallDigest)).toBe(false);
      const cacheDir = dirs[dirs.length - 1];
      expect(readdirSync(join(cacheDir, 'blobs'))).toEqual([]);
      expect(existsSync(join(cacheDir, 'partial', digest.slice(7)))).toBe(false);
      expect(await proxy.metrics.value('berth_proxy_digest_mismatches_total', { kind: 'blob', upstream: 'evil' })).toBe(3);
    });

    it('refuses a manifest whose bytes do not hash to the digest asked for', async () => {
      const res = await fetch(`${proxy.url}/v2/evil/app/manifests/${manifestDigest}`);
      expect(res.status).toBe(502);
      expect(await code(res)).toBe('UPSTREAM_DIGEST_MISMATCH');
      expect(readdirSync(join(dirs[dirs.length - 1], 'manifests'))).toEqual([]);
    });
  });
});
