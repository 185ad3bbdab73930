import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { startRegistryProxy, type RunningProxy } from '../../registry-proxy/index.js';
import { call, csvOf, enroll, newDevice } from './control-plane-support.js';

/** Polls the proxy with `token` until it refuses it; the bound is 5 s. */
async function refusedWithin(proxy: string, token: string, ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    const res = await fetch(`${proxy}/v2/`, { headers: { authorization: `Bearer ${token}` } });
    await res.arrayBuffer();
    if (res.status === 401 || res.status === 403 || Date.now() > deadline) return res.status;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('finding 4: a revocation reaches the registry proxy within seconds', () => {
  let dir: string;
  let cp: RunningControlPlane;
  let proxy: RunningProxy;
  const log = createLogger('test', { level: 'silent' });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-sec04-'));
    cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'cp', 'berth.db')}`, log });
    proxy = await startRegistryProxy({ cacheDir: join(dir, 'cache'), upstreams: [{ alias: 'lab', url: 'http://127.0.0.1:9' }], controlPlane: cp.url, jwksCooldownMs: 0, log });
  });
  afterAll(async () => {
    await proxy?.close();
    await cp?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const operatorPullToken = async (role: string) => {
    const t = await call(cp.url, 'POST', '/v1/tokens', { token: cp.adminToken, json: { name: `p-${role}`, role } });
    const basic = Buffer.from(`x:${t.body.token}`).toString('base64');
    const r = await call(cp.url, 'GET', '/v1/registry/token?service=berth-registry-proxy&scope=repository:lab/app:pull', { headers: { authorization: `Basic ${basic}` } });
    expect(r.status).toBe(200);
    return { id: t.body.id as string, pull: r.body.token as string };
  };

  it("a revoked device's pull token is refused by the proxy within 5 s", async () => {
    const d = newDevice('SEC04-DEV');
    expect((await call(cp.url, 'POST', '/v1/devices/import', { token: cp.adminToken, text: csvOf([d]), type: 'text/csv' })).status).toBe(200);
    const e = await enroll(cp.url, d);
    const pt = await call(cp.url, 'POST', '/v1/device/pull-token', { token: e.token });
    expect(pt.status).toBe(200);
    expect((await fetch(`${proxy.url}/v2/`, { headers: { authorization: `Bearer ${pt.body.token}` } })).status).toBe(200);
    expect((await call(cp.url, 'POST', `/v1/devices/${d.serial}/revoke`, { token: cp.adminToken })).status).toBe(200);
    expect(await refusedWithin(proxy.url, pt.body.token, 5000)).toBe(401);
  });

  it("a revoked viewer's registry token is refused by the proxy within 5 s", async () => {
    const viewer = await operatorPullToken('viewer');
    expect((await fetch(`${proxy.url}/v2/`, { headers: { authorization: `Bearer ${viewer.pull}` } })).status).toBe(200);
    expect((await call(cp.url, 'DELETE', `/v1/tokens/${viewer.id}`, { token: cp.adminToken })).status).toBe(200);
    expect(await refusedWithin(proxy.url, viewer.pull, 5000)).toBe(401);
  });

  it('a token signed with a revoked key is refused by the proxy within 5 s, and a fresh one works', async () => {
    const before = await operatorPullToken('viewer');
    expect((await fetch(`${proxy.url}/v2/`, { headers: { authorization: `Bearer ${before.pull}` } })).status).toBe(200);
    const kid = cp.ctx.keys.active().kid;
    expect((await call(cp.url, 'POST', `/v1/keys/${kid}/revoke`, { token: cp.adminToken })).status).toBe(200);
    expect(await refusedWithin(proxy.url, before.pull, 5000)).toBe(401);
    const after = await operatorPullToken('viewer');
    expect((await fetch(`${proxy.url}/v2/`, { headers: { authorization: `Bearer ${after.pull}` } })).status).toBe(200);
  });
});
