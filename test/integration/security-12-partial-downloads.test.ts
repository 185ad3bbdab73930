import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { startRegistryProxy, type RunningProxy } from '../../registry-proxy/index.js';

const SENT = 600 * 1024;
const SIZE = 2 * 1024 * 1024;
const digestOf = (seed: string) => `sha256:${createHash('sha256').update(seed).digest('hex')}`;

/**
 * A hostile upstream registry: announces 2 MiB for any blob, sends 600 KiB and cuts the
 * connection; a resume gets a 500. The proxy is left with a partial file of each blob asked for.
 */
function hostileUpstream(): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/v2/') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    if (req.headers.range) return void res.writeHead(500).end();
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(SIZE) });
    res.write(Buffer.alloc(SENT, 7), () => setTimeout(() => res.destroy(), 50));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/**
 * Finding 12: partial downloads a hostile upstream leaves behind did not count toward
 * `--cache-max-bytes` and were never removed. Now they count, an idle one is evicted like a blob,
 * and one older than the partial TTL is deleted (at start, and whenever a fetch ends).
 */
describe('finding 12: partial downloads count toward the cache budget and expire', () => {
  let dir: string;
  let upstream: Server;
  let proxy: RunningProxy | undefined;
  const start = (partialTtlMs?: number) =>
    startRegistryProxy({
      listen: '127.0.0.1:0',
      cacheDir: join(dir, 'cache'),
      upstreams: [{ alias: 'evil', url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` }],
      anonymous: true,
      cacheMaxBytes: 1024 * 1024,
      fetch: { attempts: 1, backoffMs: 10, stallMs: 5000 },
      partialTtlMs,
      log: createLogger('registry-proxy', { level: 'silent' }),
    });
  const partials = () => readdir(join(dir, 'cache', 'partial'));
  /** Asks for a blob (the proxy streams what arrives, so the answer is cut, not refused) and waits until its fetch has ended. */
  const ask = async (p: RunningProxy, digest: string) => {
    const r = await fetch(`${p.url}/v2/evil/app/blobs/${digest}`);
    const body = await r.arrayBuffer().catch(() => null);
    expect(body?.byteLength ?? 0).toBeLessThan(SIZE);
    for (let i = 0; i < 100 && ((await (await fetch(`${p.url}/healthz`)).json()) as { inflight: number }).inflight > 0; i++) await new Promise((res) => setTimeout(res, 50));
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-sec12-'));
    upstream = await hostileUpstream();
  });
  afterAll(async () => {
    await proxy?.close();
    await new Promise((r) => upstream?.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it('counts what a cut fetch left, evicts the oldest idle partial past the budget, and expires them', async () => {
    proxy = await start();
    const [a, b] = [digestOf('a'), digestOf('b')];
    await ask(proxy, a);
    expect(await partials()).toEqual([a.slice(7)]);
    expect(proxy.cache.sizeBytes).toBe(SENT);
    const health = (await (await fetch(`${proxy.url}/healthz`)).json()) as { cache: unknown };
    expect(health.cache).toEqual({ bytes: SENT, blobs: 0 });

    // A second one: 1.2 MB of partial files in a 1 MiB budget, so the older idle one goes.
    await ask(proxy, b);
    expect(await partials()).toEqual([b.slice(7)]);
    expect(proxy.cache.sizeBytes).toBe(SENT);

    // Kept across a restart (for a resume) and counted, until older than the TTL.
    await proxy.close();
    proxy = await start();
    expect(proxy.cache.sizeBytes).toBe(SENT);
    await proxy.close();
    proxy = await start(1);
    expect(await partials()).toEqual([]);
    expect(proxy.cache.sizeBytes).toBe(0);
  });
});
