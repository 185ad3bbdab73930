import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { startControlPlane } from '../../control-plane/index.js';
import { call } from './control-plane-support.js';

describe('finding 9: a revoked bootstrap admin token does not come back at the next start', () => {
  let dir = '';
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('mints the first admin token only into an empty operator table', async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-sec09-'));
    const opts = { listen: '127.0.0.1:0', db: `file:${join(dir, 'berth.db')}`, dataDir: dir, log: createLogger('control-plane', { level: 'silent' }) };
    const first = await startControlPlane(opts);
    const boot = first.adminToken as string;
    const other = await call(first.url, 'POST', '/v1/tokens', { token: boot, json: { name: 'ops', role: 'admin' } });
    const tokens = await call(first.url, 'GET', '/v1/tokens', { token: boot });
    const bootId = tokens.body.tokens.find((t: { name: string }) => t.name === 'bootstrap-admin').id as string;
    expect((await call(first.url, 'DELETE', `/v1/tokens/${bootId}`, { token: other.body.token })).status).toBe(200);
    await first.close();

    const second = await startControlPlane(opts);
    try {
      const after = await call(second.url, 'GET', '/v1/tokens', { token: other.body.token });
      expect(after.body.tokens.map((t: { name: string; revokedAt: string | null }) => [t.name, t.revokedAt !== null])).toEqual([['bootstrap-admin', true], ['ops', false]]);
      expect((await call(second.url, 'GET', '/v1/tokens', { token: second.adminToken })).status).toBe(401);
    } finally {
      await second.close();
    }
  });
});
