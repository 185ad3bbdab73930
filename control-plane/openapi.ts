import { z } from 'zod';
import type { Role } from './http.js';

/** One route as the OpenAPI document describes it; kept next to the route's handler. */
export interface RouteDoc {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** Hono style: `/v1/devices/:serial`. */
  path: string;
  summary: string;
  auth: 'none' | 'device' | Role;
  body?: z.ZodType;
  /** For a non-JSON body (CSV, manifest text): its media types. */
  bodyTypes?: string[];
  query?: z.ZodType;
  response?: z.ZodType;
  /** Other answers worth naming, status → description. */
  responses?: Record<number, string>;
}

function schemaOf(s: z.ZodType): unknown {
  return z.toJSONSchema(s, { unrepresentable: 'any', io: 'input' });
}

export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }) });

export function openApiDocument(docs: RouteDoc[], serverUrl: string | null): object {
  const paths: Record<string, Record<string, object>> = {};
  for (const d of docs) {
    const p = openApiPath(d.path);
    const params: object[] = [...p.matchAll(/\{([^}]+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    if (d.query) {
      const q = schemaOf(d.query) as { properties?: Record<string, object>; required?: string[] };
      for (const [name, schema] of Object.entries(q.properties ?? {})) {
        params.push({ name, in: 'query', required: q.required?.includes(name) ?? false, schema });
      }
    }
    const op: Record<string, unknown> = {
      summary: d.summary,
      'x-berth-auth': d.auth,
      security: d.auth === 'none' ? [] : [{ bearer: [] }],
      parameters: params,
      responses: {
        [d.response ? '200' : '204']: d.response ? { description: 'OK', content: { 'application/json': { schema: schemaOf(d.response) } } } : { description: 'OK' },
        ...Object.fromEntries(Object.entries(d.responses ?? {}).map(([s, description]) => [s, { description }])),
        '4XX': { description: 'refused', content: { 'application/json': { schema: schemaOf(errorSchema) } } },
      },
    };
    if (d.body || d.bodyTypes) {
      const content: Record<string, object> = {};
      if (d.body) content['application/json'] = { schema: schemaOf(d.body) };
      for (const t of d.bodyTypes ?? []) content[t] = { schema: { type: 'string' } };
      op.requestBody = { required: true, content };
    }
    (paths[p] ??= {})[d.method] = op;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Berth control plane', version: '1' },
    servers: serverUrl ? [{ url: serverUrl }] : [],
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    paths,
  };
}
