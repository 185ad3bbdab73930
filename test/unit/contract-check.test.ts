import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { checkAnswers, type AnswerMismatch } from '../../protocol/answer-check.js';
import { schemaMismatch } from '../../protocol/check.js';
import { controlPlaneApi } from '../../protocol/control-plane.js';
import { openApiDocument } from '../../protocol/openapi.js';
import { registryProxyApi } from '../../protocol/registry-proxy.js';
import { errorEnvelope, json, route, empty, type Api } from '../../protocol/route.js';

describe('schemaMismatch', () => {
  const item = z.object({ name: z.string(), size: z.number().nullable() });
  const body = z.object({
    items: z.array(item),
    byKey: z.record(z.string(), item),
    either: z.union([z.object({ open: z.literal(true), closesAt: z.string() }), z.object({ open: z.literal(false), opensAt: z.string() })]).nullable(),
  });
  const good = { items: [{ name: 'a', size: 1 }], byKey: { k: { name: 'b', size: null } }, either: { open: true, closesAt: 'x' } };

  it('accepts what the schema describes', () => {
    expect(schemaMismatch(body, good)).toBeNull();
    expect(schemaMismatch(body, { ...good, either: null })).toBeNull();
  });
  it('names a missing or mistyped field', () => {
    expect(schemaMismatch(body, { ...good, items: [{ name: 'a' }] })).toBe('items.0.size: Invalid input: expected number, received undefined');
    expect(schemaMismatch(body, { ...good, byKey: { k: { name: 2, size: 1 } } })).toMatch(/^byKey\.k\.name: /);
  });
  it('names a field the schema does not describe, at any depth', () => {
    expect(schemaMismatch(body, { ...good, extra: 1 })).toBe('extra: not described by the contract');
    expect(schemaMismatch(body, { ...good, items: [{ name: 'a', size: 1, bytesDone: 3 }] })).toBe('items.0.bytesDone: not described by the contract');
    expect(schemaMismatch(body, { ...good, byKey: { k: { name: 'b', size: 1, x: 0 } } })).toBe('byKey.k.x: not described by the contract');
    // In a union, the option the value really is decides.
    expect(schemaMismatch(body, { ...good, either: { open: false, opensAt: 'x', closesAt: 'y' } })).toBe('either.closesAt: not described by the contract');
  });
  it('leaves open objects open', () => {
    expect(schemaMismatch(z.looseObject({ a: z.string() }), { a: 'x', b: 1 })).toBeNull();
  });
});

/** A service with one route, whose answer is `answer`; the answer check in front of it. */
function serviceAnswering(schema: z.ZodType, answer: unknown) {
  const r = route({ method: 'get', path: '/v1/things/:id', summary: 'a thing', auth: 'none', responses: { 200: json(schema), 304: empty('unchanged') } });
  const api: Api = { title: 't', version: '1', error: errorEnvelope, routes: [r] };
  const seen: AnswerMismatch[] = [];
  const app = new Hono();
  app.use('*', checkAnswers(api, (m) => seen.push(m), (message) => ({ error: { code: 'contract-violation', message } })));
  app.get('/v1/things/:id', (c) => {
    // ?sent: the way @hono/node-server marks a body the handler wrote to the socket itself.
    if (c.req.query('sent') !== undefined) return new Response(null, { headers: { 'x-hono-already-sent': 'true' } });
    return c.req.header('if-none-match') ? c.body(null, 304) : c.json(answer, 200, { ETag: '"1"' });
  });
  app.get('/v1/unlisted', (c) => c.json({ error: 'not the envelope' }, 404));
  return { app, seen };
}

describe('checkAnswers', () => {
  it('passes an answer its schema describes through untouched', async () => {
    const { app, seen } = serviceAnswering(z.object({ id: z.string() }), { id: 'a' });
    const res = await app.request('/v1/things/a');
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).toBe('"1"');
    expect(await res.json()).toEqual({ id: 'a' });
    expect((await app.request('/v1/things/a', { headers: { 'if-none-match': '"1"' } })).status).toBe(304);
    expect(seen).toEqual([]);
  });

  it('turns an answer a wrong schema does not describe into a 500 naming route and field, and records it', async () => {
    // The registered schema is wrong for what the handler answers: the check must catch it.
    const { app, seen } = serviceAnswering(z.object({ id: z.number() }), { id: 'a' });
    const res = await app.request('/v1/things/a');
    expect(res.status).toBe(500);
    expect(res.headers.get('etag')).toBeNull();
    const problem = 'id: Invalid input: expected number, received string';
    expect(await res.json()).toEqual({ error: { code: 'contract-violation', message: `GET /v1/things/:id answered 200 outside its contract: ${problem}` } });
    expect(seen).toEqual([{ method: 'GET', route: '/v1/things/:id', status: 200, problem }]);
  });

  it('leaves alone a body already written to the socket (blobs, deltas)', async () => {
    const { app, seen } = serviceAnswering(z.object({ id: z.number() }), { id: 'a' });
    expect((await app.request('/v1/things/a?sent')).status).toBe(200);
    expect(seen).toEqual([]);
  });

  it('holds refusals to the error envelope, also on routes it does not know', async () => {
    const { app, seen } = serviceAnswering(z.object({ id: z.string() }), { id: 'a' });
    expect((await app.request('/v1/unlisted')).status).toBe(500);
    expect(seen[0]).toMatchObject({ route: '/v1/unlisted', status: 404, problem: 'error: Invalid input: expected object, received string' });
  });
});

describe('the control plane description', () => {
  const doc = openApiDocument(controlPlaneApi, null) as { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: object }> }> }>> };
  const ops = Object.entries(doc.paths).flatMap(([path, byMethod]) => Object.entries(byMethod).map(([method, op]) => ({ path, method, op })));

  it('gives every operation a success or redirect status with a described body', () => {
    expect(ops.length).toBe(controlPlaneApi.routes.length);
    for (const { path, method, op } of ops) {
      // A redirect (the console's /ui to /ui/) is a success whose body is the Location.
      const described = Object.entries(op.responses).filter(([s, r]) => /^[23]\d\d$/.test(s) && r.content);
      expect(described.length, `${method} ${path}`).toBeGreaterThan(0);
    }
  });
  it('lets no GET claim 204 but the device that has nothing assigned', () => {
    const get204 = ops.filter(({ method, op }) => method === 'get' && '204' in op.responses).map(({ path }) => path);
    expect(get204).toEqual(['/v1/device/desired']);
  });
  it('says the twin carries progress as the device sends it: bytes {done, total}', () => {
    const twin = doc.paths['/v1/devices/{serial}'].get.responses['200'].content?.['application/json'].schema as { properties: { reported: { anyOf: { properties?: Record<string, unknown> }[] } } };
    const reported = twin.properties.reported.anyOf.find((s) => s.properties)?.properties ?? {};
    expect(reported.bytes).toMatchObject({ type: 'object', required: ['done', 'total'] });
    expect(reported).not.toHaveProperty('bytesDone');
  });
});

describe('the registry proxy description', () => {
  it('covers its /berth/v1 routes, refusals in the OCI form', () => {
    const doc = openApiDocument(registryProxyApi, null) as { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: { required?: string[] } }> }> }>> };
    expect(Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`)).sort()).toEqual([
      'get /berth/v1/deltas/{digest}',
      'get /berth/v1/upstreams',
      'post /berth/v1/deltas/plan',
      'post /berth/v1/warm',
    ]);
    expect(Object.keys(doc.paths['/berth/v1/deltas/plan'].post.responses)).toEqual(['200', '202', '4XX', '5XX']);
    expect(doc.paths['/berth/v1/warm'].post.responses['4XX'].content?.['application/json'].schema.required).toEqual(['errors']);
  });
});
