import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { requestId, type RequestIdVariables } from '../../common/request-id.js';
import { serveHttp, type Served } from '../../common/serve.js';

/**
 * X-Request-Id over real HTTP on loopback (@hono/node-server, as both services serve): set on the
 * Node response, it must reach every kind of answer: JSON, an error from onError, a Response the
 * handler built itself, a streamed body, and the not-found answer.
 */
describe('X-Request-Id', () => {
  let served: Served;
  beforeAll(async () => {
    const log = createLogger('test', { level: 'silent' });
    const app = new Hono<{ Variables: RequestIdVariables }>();
    app.use('*', requestId(log));
    app.onError((_err, c) => c.json({ error: 'boom' }, 500));
    app.get('/json', (c) => c.json({ id: c.var.requestId }, 200, { 'Cache-Control': 'no-store' }));
    app.get('/throws', () => {
      throw new Error('boom');
    });
    app.get('/raw', () => new Response('raw', { status: 201, headers: { 'X-Other': '1' } }));
    app.get('/stream', () => new Response(new ReadableStream({ start: (s) => (s.enqueue(new TextEncoder().encode('chunk')), s.close()) })));
    served = await serveHttp({ fetch: app.fetch, listen: '127.0.0.1:0', log });
  });
  afterAll(async () => served?.close(0));

  it('answers the caller’s sane id, or a new one, on every kind of answer, once', async () => {
    const mine = await fetch(`${served.url}/json`, { headers: { 'X-Request-Id': 'trace.abc-1' } });
    expect(mine.headers.get('x-request-id')).toBe('trace.abc-1');
    expect(await mine.json()).toEqual({ id: 'trace.abc-1' });
    expect(mine.headers.get('cache-control')).toBe('no-store');

    const insane = await fetch(`${served.url}/json`, { headers: { 'X-Request-Id': 'a b<script>' } });
    const given = insane.headers.get('x-request-id');
    expect(given).toMatch(/^[A-Za-z0-9._-]{1,64}$/);
    expect(await insane.json()).toEqual({ id: given });

    for (const [path, status] of [['/throws', 500], ['/raw', 201], ['/stream', 200], ['/nowhere', 404]] as const) {
      const r = await fetch(`${served.url}${path}`, { headers: { 'X-Request-Id': `id-${status}` } });
      expect(r.status, path).toBe(status);
      expect(r.headers.get('x-request-id'), path).toBe(`id-${status}`);
      await r.arrayBuffer();
    }
    const raw = await fetch(`${served.url}/raw`);
    expect(raw.headers.get('x-other')).toBe('1');
    expect(raw.headers.get('x-request-id')).toMatch(/^[A-Za-z0-9._-]{1,64}$/);
  });
});
