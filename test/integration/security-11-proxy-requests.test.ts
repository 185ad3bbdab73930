import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistryProxy, type RunningProxy } from '../../registry-proxy/index.js';
import { WARM_MAX_BODY } from '../../registry-proxy/request-guards.js';
import { rigFromEnv } from '../rig/index.js';
import { capturedLog } from './security-support.js';

const rig = rigFromEnv();

/** Sends bytes as they are (request lines fetch() would never write) and reads the status line and body. */
function rawRequest(url: string, head: string, body: Buffer | string = ''): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(u.port), u.hostname);
    let data = '';
    s.on('data', (b) => (data += b.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => resolve({ status: Number(data.split(' ')[1]), body: data.slice(data.indexOf('\r\n\r\n') + 4) }));
    s.write(`${head}\r\nHost: ${u.host}\r\nConnection: close\r\n\r\n`);
    s.end(body);
  });
}

/**
 * Finding 11: an absolute-form request line crashed the handler (500), `/berth/v1/warm` buffered
 * any body (104 MB: 77 → 364 MB), and the log recorded the normalized path, not the one sent.
 */
describe('finding 11: the proxy refuses odd requests cleanly and logs what was sent', () => {
  let dir: string;
  let proxy: RunningProxy;
  const { log, lines } = capturedLog();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-sec11-'));
    proxy = await startRegistryProxy({ listen: '127.0.0.1:0', cacheDir: join(dir, 'cache'), upstreams: [{ alias: 'rig', url: rig.registryUrl }], anonymous: true, log });
  });
  afterAll(async () => {
    await proxy?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers an absolute-form request line with 400, for its own host and another', async () => {
    const host = new URL(proxy.url).host;
    for (const target of [`http://${host}/v2/rig/x/manifests/latest`, 'http://registry.example.com/v2/']) {
      const r = await rawRequest(proxy.url, `GET ${target} HTTP/1.1`);
      expect(r.status, target).toBe(400);
      expect(JSON.parse(r.body).errors[0]).toMatchObject({ code: 'NAME_INVALID', message: expect.stringContaining('not a forward proxy') });
    }
    expect((await fetch(`${proxy.url}/healthz`)).status).toBe(200);
  });

  it('logs the path as sent, not as normalized', async () => {
    const r = await rawRequest(proxy.url, 'GET /v2/rig/%2e%2e/secret/manifests/latest HTTP/1.1');
    expect(r.status).toBe(400);
    const logged = lines.filter((l) => l.msg === 'request').map((l) => l.path);
    expect(logged).toContain('/v2/rig/%2e%2e/secret/manifests/latest');
  });

  it('refuses a warm body over the limit with 413, with or without a length', async () => {
    const big = `{"images":["rig/${'a'.repeat(WARM_MAX_BODY)}:1"]}`;
    const sized = await rawRequest(proxy.url, `POST /berth/v1/warm HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: ${big.length}`, big);
    expect(sized.status).toBe(413);
    const chunk = (s: string) => `${s.length.toString(16)}\r\n${s}\r\n`;
    const chunked = await rawRequest(proxy.url, 'POST /berth/v1/warm HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked', chunk(big.slice(0, 100_000)) + chunk(big.slice(100_000)) + '0\r\n\r\n');
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body).errors[0].message).toContain('larger than 256 KiB');
  });
});
