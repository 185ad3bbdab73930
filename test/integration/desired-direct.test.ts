import { beforeAll, describe, expect, it, vi } from 'vitest';
import { desiredDirect } from '../../control-plane/device-api/desired-direct.js';
import type { RunningControlPlane } from '../../control-plane/index.js';
import { verifyDeployment } from '../../protocol/deployment.js';
import { forgeImage } from '../rig/forge.js';
import { rigFromEnv } from '../rig/index.js';
import { call } from './control-plane-support.js';
import { directBeside, requestCounters, seenOf, type Seen } from './direct-support.js';

/**
 * The desired-state poll served on node:http ahead of the Hono adapter (device-api/desired-direct.ts,
 * issue 17), over real HTTP on loopback against a real control plane on a real libSQL file, its
 * release resolved in the rig's registry, its answers checked against protocol/ (contract-setup.ts):
 * every answer and refusal is the Hono route's on the same context, the request metrics count the
 * same series, and the wait holds until the device changes or its client leaves.
 */

describe('desired-state polls on node:http', () => {
  const rig = rigFromEnv();
  const repo = `desired-direct-${process.pid}`;
  const t = directBeside('dd', desiredDirect, { feedTickMs: 100 });
  const { active: polling, revoked } = t.devices;
  const bearer = t.bearer;
  let cp: RunningControlPlane;
  let admin: string;
  let jwks: { keys: object[] };

  beforeAll(async () => {
    ({ cp, admin } = t);
    jwks = (await call(cp.url, 'GET', '/.well-known/jwks.json')).body;
    await forgeImage(rig.registry, repo, '1.0', { layers: [{ files: { '/app.txt': 'one\n' } }], config: { Cmd: ['/bin/true'] } });
    await forgeImage(rig.registry, repo, '1.1', { layers: [{ files: { '/app.txt': 'two\n' } }], config: { Cmd: ['/bin/true'] } });
    for (const v of ['1.0', '1.1']) {
      const source = ['name: dd-app', `version: ${v}.0`, 'services:', '  web:', `    image: ${rig.registry}/${repo}:${v}`, ''].join('\n');
      expect((await call(cp.url, 'POST', '/v1/manifests', { token: admin, text: source, type: 'application/yaml' })).status).toBe(201);
    }
  });

  const seen = (r: Response) => seenOf(r, ['content-type', 'etag', 'cache-control', 'x-berth-log-requests']);
  /** The same poll to the direct listener (node:http) and to the Hono app of the same context. */
  async function both(path: string, headers: Record<string, string>): Promise<[Seen, Seen]> {
    return [await seen(await fetch(`${t.direct.url}${path}`, { headers })), await seen(await t.hono.request(path, { headers }))];
  }
  it('answers every refusal as the Hono route does, and counts it in the same series', async () => {
    const cases: [string, Record<string, string>, number, string][] = [
      ['/v1/device/desired', {}, 401, 'unauthenticated'],
      ['/v1/device/desired', { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }, 401, 'unauthenticated'],
      ['/v1/device/desired?wait=5', { authorization: 'Bearer not-a-token' }, 401, 'invalid-token'],
      ['/v1/device/desired?wait=abc', { authorization: 'Bearer not-a-token' }, 401, 'invalid-token'],
      ['/v1/device/desired', bearer(revoked.serial), 403, 'device-revoked'],
      ['/v1/device/desired', { authorization: `Bearer ${t.tokens.old}` }, 401, 'token-superseded'],
      ['/v1/device/desired?wait=abc', bearer(polling.serial), 400, 'invalid-query'],
      ['/v1/device/desired?wait=3601', bearer(polling.serial), 400, 'invalid-query'],
      ['/v1/device/desired?wait=-1', bearer(polling.serial), 400, 'invalid-query'],
      ['/v1/device/desired?wait=1.5', bearer(polling.serial), 400, 'invalid-query'],
    ];
    for (const [path, headers, status, code] of cases) {
      const [direct, viaHono] = await both(path, headers);
      expect(direct, `${path} ${JSON.stringify(headers).slice(0, 60)}`).toEqual(viaHono);
      expect([path, direct.status, direct.body && JSON.parse(direct.body).error.code]).toEqual([path, status, code]);
    }
    // Each refusal counted once on each side, under the same route and status: a refusal of the
    // device check under the sub-app's `/v1/device/*`, one of the query under the route itself.
    const [byDirect, byHono] = await Promise.all([t.directMetrics, t.honoMetrics].map(requestCounters));
    expect(byDirect.size).toBeGreaterThan(1);
    expect(byDirect).toEqual(byHono);
  });

  it('answers 204, then the document with its ETag, then 304, as the Hono route does', async () => {
    const none = await both('/v1/device/desired', bearer(polling.serial));
    expect(none[0]).toEqual(none[1]);
    expect(none[0].status).toBe(204);
    expect((await call(cp.url, 'POST', `/v1/devices/${polling.serial}/assign`, { token: admin, json: { manifest: 'dd-app@1.0.0' } })).status).toBe(200);
    const [direct, viaHono] = await both('/v1/device/desired?wait=0', bearer(polling.serial));
    expect({ ...direct, body: '' }).toEqual({ ...viaHono, body: '' });
    expect([direct.status, direct.headers.etag, direct.headers['cache-control'], direct.headers['content-type']]).toEqual([200, '"1"', 'no-store', 'application/json']);
    // The document is signed when asked for: the same deployment, not the same bytes.
    const device = (await call(cp.url, 'GET', `/v1/devices/${polling.serial}`, { token: admin })).body.id as string;
    const docs = await Promise.all([direct, viaHono].map((s) => verifyDeployment(JSON.parse(s.body).document, { keys: jwks as never, device })));
    expect(docs[0]).toMatchObject({ sequence: 1, manifest: { name: 'dd-app', version: '1.0.0' } });
    expect(docs[0].spec).toEqual(docs[1].spec);
    const same = await both('/v1/device/desired', { ...bearer(polling.serial), 'if-none-match': '"1"' });
    expect(same[0]).toEqual(same[1]);
    expect([same[0].status, same[0].headers.etag, same[0].body]).toEqual([304, '"1"', '']);
  });

  it('holds a poll until its device changes, and lets it go when the client leaves', async () => {
    const current = { ...bearer(polling.serial), 'if-none-match': '"1"' };
    const held = call(t.direct.url, 'GET', '/v1/device/desired?wait=30', { headers: { ...current, 'x-request-id': 'trace.poll-1' } });
    await vi.waitFor(() => expect(cp.ctx.waiters.size).toBe(1), { timeout: 10_000 });
    expect((await call(cp.url, 'POST', `/v1/devices/${polling.serial}/assign`, { token: admin, json: { manifest: 'dd-app@1.1.0' } })).status).toBe(200);
    const woken = await held;
    expect([woken.status, woken.headers.get('etag'), woken.headers.get('x-request-id')]).toEqual([200, '"2"', 'trace.poll-1']);

    const leaving = new AbortController();
    const gone = fetch(`${t.direct.url}/v1/device/desired?wait=30`, { headers: { ...bearer(polling.serial), 'if-none-match': '"2"' }, signal: leaving.signal }).catch((err: Error) => err.name);
    await vi.waitFor(() => expect(cp.ctx.waiters.size).toBe(1), { timeout: 10_000 });
    leaving.abort();
    expect(await gone).toBe('AbortError');
    await vi.waitFor(() => expect(cp.ctx.waiters.size).toBe(0), { timeout: 10_000 });
  });

  it('leaves to Hono the requests it does not take, which the control plane answers the same', async () => {
    const headers = { ...bearer(polling.serial), 'if-none-match': '"2"' };
    // Percent-encoded and repeated parameters, other characters, another path, a HEAD, a body: Hono reads and limits those.
    const declined: [string, RequestInit][] = [
      ['/v1/device/desired?wait=%30', { headers }],
      ['/v1/device/desired?wait=0&wait=0', { headers }],
      ['/v1/device/desired?wait=0;', { headers }],
      ['/v1/device/desired/', { headers }],
      ['/v1/device/desired', { method: 'HEAD', headers }],
      ['/v1/device/desired', { headers: { ...headers, 'content-length': '2' }, body: '{}', method: 'POST' }],
    ];
    for (const [path, init] of declined) expect([path, init.method, (await fetch(`${t.direct.url}${path}`, init)).status]).toEqual([path, init.method, 599]);
    for (const [path, init] of declined.slice(0, 2)) {
      const r = await fetch(`${cp.url}${path}`, init);
      expect([path, r.status, r.headers.get('etag')]).toEqual([path, 304, '"2"']);
    }
    expect((await call(cp.url, 'GET', '/v1/device/desired?wait=0;', { headers })).body.error.code).toBe('invalid-query');
    expect((await call(cp.url, 'GET', '/v1/device/desired?wait=%41', { headers })).body.error.code).toBe('invalid-query');
    // And the plain poll, which the control plane serves through desiredDirect (index.ts).
    const plain = await call(cp.url, 'GET', '/v1/device/desired?wait=0', { headers });
    expect([plain.status, plain.headers.get('etag')]).toEqual([304, '"2"']);
  });
});
