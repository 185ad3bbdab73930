import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { call } from './control-plane-support.js';

/** The console's server side over real HTTP: its files under a strict CSP, the session, the stream and the audit page. */
const ADMIN = 'berth_' + randomBytes(32).toString('base64url');
let dir: string;
let cp: RunningControlPlane;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-console-api-'));
  cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'cp.db')}`, dataDir: dir, adminToken: ADMIN, log: createLogger('control-plane', { level: 'warn' }) });
});

afterAll(async () => {
  await cp?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('console server side', () => {
  it('serves the page and its files from the package under a strict CSP, and nothing else', async () => {
    const redirect = await fetch(`${cp.url}/ui`, { redirect: 'manual' });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get('location')).toBe('/ui/');
    const page = await fetch(`${cp.url}/ui/`);
    const html = await page.text();
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'; script-src 'self'; style-src 'self'");
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    // No inline script or style, no other origin.
    expect(html).not.toMatch(/<script>|<style|style=|https?:\/\//);
    for (const src of [...html.matchAll(/(?:src|href)="(assets\/[^"]+)"/g)].map((m) => m[1])) {
      const r = await fetch(`${cp.url}/ui/${src}`);
      expect(r.status, src).toBe(200);
      expect(await r.text()).not.toMatch(/https?:\/\/(?!www\.w3\.org)/);
    }
    expect((await fetch(`${cp.url}/ui/assets/..%2Fapi.ts`)).status).toBe(404);
    expect((await fetch(`${cp.url}/ui/assets/nope.js`)).status).toBe(404);
  });

  it('answers who the token is, streams changes only to a token, and pages the audit log newest first', async () => {
    const viewer = (await call(cp.url, 'POST', '/v1/tokens', { token: ADMIN, json: { name: 'watcher', role: 'viewer' } })).body;
    expect((await call(cp.url, 'GET', '/v1/console/session', { token: viewer.token })).body).toEqual({ tokenId: viewer.id, name: 'watcher', role: 'viewer' });
    expect((await call(cp.url, 'GET', '/v1/console/stream')).status).toBe(401);
    expect((await call(cp.url, 'GET', '/v1/console/audit', { token: viewer.token })).status).toBe(403);

    const ctrl = new AbortController();
    const res = await fetch(`${cp.url}/v1/console/stream`, { headers: { authorization: `Bearer ${viewer.token}` }, signal: ctrl.signal });
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    while (!text.includes('event: change')) text += new TextDecoder().decode((await reader.read()).value);
    expect(text).toContain('event: hello');
    ctrl.abort();

    for (let i = 0; i < 3; i++) await call(cp.url, 'POST', '/v1/tokens', { token: ADMIN, json: { name: `t${i}`, role: 'viewer' } });
    const first = (await call(cp.url, 'GET', '/v1/console/audit?limit=2&action=token.', { token: ADMIN })).body;
    expect(first.entries.map((e: any) => e.after.name)).toEqual(['t2', 't1']);
    const second = (await call(cp.url, 'GET', `/v1/console/audit?limit=2&action=token.&before=${first.next}`, { token: ADMIN })).body;
    expect(second.entries.map((e: any) => e.after.name)).toEqual(['t0', 'watcher']);
    expect((await call(cp.url, 'GET', '/v1/console/audit?action=token%25', { token: ADMIN })).body.entries).toEqual([]);
    expect((await call(cp.url, 'GET', '/v1/console/audit?actor=operator%3A&limit=500', { token: ADMIN })).body.entries.length).toBe(4);
    expect((await call(cp.url, 'GET', '/v1/console/audit?limit=0', { token: ADMIN })).status).toBe(400);
  });
});
