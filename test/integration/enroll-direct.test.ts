import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { requestId, type RequestIdVariables } from '../../common/request-id.js';
import { serveHttp } from '../../common/serve.js';
import { buildApp } from '../../control-plane/app.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { enrollChallengeResponse } from '../../protocol/device.js';
import { call, csvOf, enroll, enrollWith, newDevice } from './control-plane-support.js';

/**
 * The enrollment routes served on node:http ahead of the Hono adapter (device-api/enroll-direct.ts,
 * issue 17), over real HTTP on loopback against a real control plane on a real libSQL file, with
 * its answers checked against protocol/ (contract-setup.ts): they answer as the Hono routes on the
 * same context do, and keep the request id, the body limit, the metrics and the refusal log.
 */

const log = createLogger('control-plane', { level: 'silent' });

describe('serveHttp direct', () => {
  it('gives the requests `direct` takes to it, and every other one to the app', async () => {
    const app = new Hono<{ Variables: RequestIdVariables }>();
    app.use('*', requestId(log));
    app.all('*', (c) => c.text('app'));
    const served = await serveHttp({
      fetch: app.fetch,
      listen: '127.0.0.1:0',
      log,
      direct: (req, res) => req.method === 'POST' && req.url === '/taken' && (res.end('direct'), true),
    });
    try {
      expect(await (await fetch(`${served.url}/taken`, { method: 'POST' })).text()).toBe('direct');
      expect(await (await fetch(`${served.url}/taken`)).text()).toBe('app');
      expect(await (await fetch(`${served.url}/other`, { method: 'POST' })).text()).toBe('app');
    } finally {
      await served.close(0);
    }
  });
});

describe('enrollment routes on node:http', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-enroll-direct-'));
  let cp: RunningControlPlane;
  let hono: Hono<any>;
  const device = newDevice('direct-0001');

  beforeAll(async () => {
    cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'berth.db')}`, dataDir: dir, registryProxy: null, log });
    hono = buildApp(cp.ctx);
    expect((await call(cp.url, 'POST', '/v1/devices/import', { token: cp.adminToken as string, text: csvOf([device]), type: 'text/csv' })).status).toBe(200);
  });
  afterAll(async () => {
    await cp?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The same request to the server and to the Hono app of the same context. */
  async function both(path: string, body: string): Promise<{ status: number; type: string | null; body: any }[]> {
    // A Request made in-process carries no Content-Length of its own; the one fetch sends is this.
    const init = { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }, body };
    return Promise.all(
      [fetch(`${cp.url}${path}`, init), hono.request(path, init)].map(async (p) => {
        const r = await p;
        return { status: r.status, type: r.headers.get('content-type'), body: await r.json() };
      }),
    );
  }

  it('answers every refusal as the Hono routes do, naming what is wrong', async () => {
    const cases: [string, string, number, string][] = [
      ['/v1/enroll/challenge', '{"serial":', 400, 'invalid-json'],
      ['/v1/enroll/challenge', '{}', 400, 'invalid-body'],
      ['/v1/enroll', JSON.stringify({ serial: device.serial }), 400, 'invalid-body'],
      ['/v1/enroll', JSON.stringify({ serial: device.serial, challenge: 'A'.repeat(76), signature: 'AAAA' }), 401, 'enrollment-refused'],
      ['/v1/enroll', JSON.stringify({ serial: device.serial, pad: 'x'.repeat(1 << 20) }), 413, 'body-too-large'],
    ];
    for (const [path, body, status, code] of cases) {
      const [direct, viaHono] = await both(path, body);
      expect(direct, `${path} ${body.slice(0, 40)}`).toEqual(viaHono);
      expect(direct.status).toBe(status);
      expect(direct.body.error.code).toBe(code);
    }
    const [direct, viaHono] = await both('/v1/enroll/challenge', JSON.stringify({ serial: device.serial }));
    expect(direct.status).toBe(200);
    expect(direct.type).toBe(viaHono.type);
    expect(Object.keys(enrollChallengeResponse.parse(direct.body))).toEqual(Object.keys(viaHono.body));
  });

  it('refuses a chunked body past 1 MiB and closes the connection', async () => {
    const answer = await new Promise<{ status: number; connection: string | undefined; body: string }>((resolve, reject) => {
      const req = request(`${cp.url}/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
        let body = '';
        res.on('data', (b: Buffer) => (body += b.toString()));
        res.on('end', () => resolve({ status: res.statusCode as number, connection: res.headers.connection, body }));
      });
      req.on('error', reject);
      for (let i = 0; i < 20; i++) req.write('x'.repeat(64 << 10));
      req.end();
    });
    expect(answer.status).toBe(413);
    expect(answer.connection).toBe('close');
    expect(JSON.parse(answer.body).error.code).toBe('body-too-large');
  });

  it('keeps the request id and the request metrics, and enrolls a device whose token then works', async () => {
    const traced = await call(cp.url, 'POST', '/v1/enroll/challenge', { json: { serial: device.serial }, headers: { 'X-Request-Id': 'trace.enroll-1' } });
    expect(traced.headers.get('x-request-id')).toBe('trace.enroll-1');
    const fresh = await call(cp.url, 'POST', '/v1/enroll', { json: {} });
    expect(fresh.headers.get('x-request-id')).toMatch(/^[A-Za-z0-9._-]{1,64}$/);
    expect(fresh.status).toBe(400);

    const { token, deviceId } = await enroll(cp.url, device);
    expect((await call(cp.url, 'GET', '/v1/device/desired', { token })).status).toBe(204);
    // Refused with another device's key: the same 401 as any refusal.
    const refused = await enrollWith(cp.url, device.serial, (await call(cp.url, 'POST', '/v1/enroll/challenge', { json: { serial: device.serial } })).body.challenge, newDevice('x').privateKey);
    expect(refused.status).toBe(401);
    expect(deviceId).toMatch(/^dev_/);

    const metrics = (await call(cp.url, 'GET', '/metrics')).body as string;
    const count = (route: string, status: number) =>
      Number(metrics.split('\n').find((l) => l.startsWith('berth_cp_http_requests_total{') && l.includes(`route="${route}"`) && l.includes(`status="${status}"`))?.split(' ').pop());
    expect(count('/v1/enroll/challenge', 200)).toBeGreaterThanOrEqual(3);
    expect(count('/v1/enroll', 200)).toBe(1);
    expect(count('/v1/enroll', 401)).toBeGreaterThanOrEqual(2);
  });
});
