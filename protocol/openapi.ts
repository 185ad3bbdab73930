import { z } from 'zod';
import { openApiPath, type Api, type Reply, type Route } from './route.js';

/**
 * The OpenAPI 3.1 description of a service, generated from its routes and nothing else: whatever
 * the contract says (and the server checks under test) is what the description says.
 */

function requestSchema(s: z.ZodType): Record<string, unknown> {
  return stripDialect(z.toJSONSchema(s, { unrepresentable: 'any', io: 'input' }));
}
function answerSchema(s: z.ZodType): Record<string, unknown> {
  return stripDialect(z.toJSONSchema(s, { unrepresentable: 'any', io: 'output' }));
}
/** OpenAPI 3.1's dialect is the document's; a `$schema` per schema object only adds noise. */
function stripDialect(schema: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _dialect, ...rest } = schema;
  return rest;
}

function responseObject(reply: Reply): object {
  switch (reply.kind) {
    case 'json':
      return { description: reply.description, content: { 'application/json': { schema: answerSchema(reply.schema) } } };
    case 'text':
      return { description: reply.description, content: Object.fromEntries(reply.types.map((t) => [t, { schema: { type: 'string' } }])) };
    case 'empty':
      return { description: reply.description };
  }
}

function parameters(r: Route, path: string): object[] {
  const params: object[] = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
  if (r.query) {
    const q = requestSchema(r.query) as { properties?: Record<string, Record<string, unknown>>; required?: string[] };
    for (const [name, schema] of Object.entries(q.properties ?? {})) {
      const { description, ...rest } = schema;
      params.push({ name, in: 'query', required: q.required?.includes(name) ?? false, ...(description ? { description } : {}), schema: rest });
    }
  }
  return params;
}

/** Groups operations by feature in renderers: `/v1/devices/…` → devices, `/healthz` → service. */
function tagOf(path: string): string {
  const parts = path.split('/').filter(Boolean);
  if (parts[0] === 'v1') return parts[1];
  if (parts[0] === 'berth') return parts[2];
  return 'service';
}

function operation(api: Api, r: Route, path: string): object {
  const error = { description: 'refused', content: { 'application/json': { schema: answerSchema(api.error) } } };
  const op: Record<string, unknown> = {
    summary: r.summary,
    tags: [tagOf(r.path)],
    'x-berth-auth': r.auth,
    security: r.auth === 'none' ? [] : [{ bearer: [] }],
    parameters: parameters(r, path),
    responses: {
      ...Object.fromEntries(Object.entries(r.responses).map(([status, reply]) => [status, responseObject(reply)])),
      '4XX': error,
      '5XX': error,
    },
  };
  if (r.body || r.bodyTypes) {
    const content: Record<string, object> = {};
    if (r.body) content['application/json'] = { schema: requestSchema(r.body) };
    for (const t of r.bodyTypes ?? []) content[t] = { schema: { type: 'string' } };
    op.requestBody = { required: true, content };
  }
  return op;
}

export function openApiDocument(api: Api, serverUrl: string | null): { openapi: string; info: object; paths: Record<string, Record<string, object>> } & Record<string, unknown> {
  const paths: Record<string, Record<string, object>> = {};
  for (const r of api.routes) {
    const path = openApiPath(r.path);
    (paths[path] ??= {})[r.method] = operation(api, r, path);
  }
  return {
    openapi: '3.1.0',
    info: { title: api.title, version: api.version },
    servers: serverUrl ? [{ url: serverUrl }] : [],
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    paths,
  };
}
