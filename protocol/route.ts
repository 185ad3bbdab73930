import { z } from 'zod';

/**
 * One HTTP route of a Berth service as the contract states it: what it takes and every answer it
 * gives with its real status. The server validates requests with these schemas and checks its
 * answers against them under test; the CLI parses answers with them; /openapi.json is generated
 * from them. One declaration, so the three cannot drift apart.
 */

export const roles = ['admin', 'release-manager', 'viewer'] as const;
export type Role = (typeof roles)[number];
export const roleSchema = z.enum(roles);

/** Who may call: anyone, an enrolled device (device token), a pull token's holder, or an operator with at least this role. */
export type Auth = 'none' | 'device' | 'pull-token' | Role;

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** One answer: JSON described by a schema, a body of another media type, or no body at all. */
export type Reply =
  | { kind: 'json'; description: string; schema: z.ZodType }
  | { kind: 'text'; description: string; types: string[] }
  | { kind: 'empty'; description: string };

export function json<S extends z.ZodType>(schema: S, description = 'OK'): { kind: 'json'; description: string; schema: S } {
  return { kind: 'json', description, schema };
}
/** A body that is not JSON, of one of these media types. */
export function text(types: string | string[], description = 'OK'): Reply {
  return { kind: 'text', description, types: typeof types === 'string' ? [types] : types };
}
export function empty(description: string): Reply {
  return { kind: 'empty', description };
}

export interface Route {
  method: Method;
  /** Hono style: `/v1/devices/:serial`. */
  path: string;
  summary: string;
  auth: Auth;
  query?: z.ZodType;
  /** A JSON body. */
  body?: z.ZodType;
  /** Media types of a body that is not JSON (CSV, a manifest's YAML), taken as text. */
  bodyTypes?: string[];
  /**
   * Every status the route answers on purpose, successes first. Refusals not listed here still
   * answer the service's error envelope (`Api.error`) with a 4xx or 5xx status.
   */
  responses: Record<number, Reply>;
}

/** Keeps the literal types of a route (its schemas), so a client parses answers into real types. */
export function route<const R extends Route>(r: R): R {
  return r;
}

/** A service's routes and the envelope its refusals use. */
export interface Api {
  title: string;
  version: string;
  error: z.ZodType;
  routes: Route[];
}

/** The 2xx and 3xx statuses of a route, lowest first: its first is what it answers when all is well. */
export function successStatuses(r: Route): number[] {
  return Object.keys(r.responses)
    .map(Number)
    .filter((s) => s >= 200 && s < 400)
    .sort((a, b) => a - b);
}

/** `/v1/devices/:serial` → `/v1/devices/{serial}`. */
export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/** `{error: {code, message, field?}}`: every refusal of the control plane, plus route-specific details. */
export const errorEnvelope = z.object({
  error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }),
});
