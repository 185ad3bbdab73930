import type { Context } from 'hono';
import type { Logger } from '../common/log.js';
import { z } from 'zod';
import type { ControlPlaneContext } from './context.js';
import { isDatabaseBusy } from './db/busy.js';

/** Who is calling: an operator with a role, or an enrolled device. */
export type Role = 'admin' | 'release-manager' | 'viewer';
export interface OperatorActor {
  kind: 'operator';
  id: string;
  role: Role;
}
export interface DeviceActor {
  kind: 'device';
  id: string;
  serial: string;
}

export interface AppEnv {
  Variables: {
    ctx: ControlPlaneContext;
    requestId: string;
    log: Logger;
    actor: OperatorActor;
    device: DeviceActor;
  };
}

/** A refusal with a status and a stable machine-readable code; the body is `{error: {code, message, field?}}`. */
export class HttpError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 405 | 409 | 413 | 415 | 422 | 429 | 500 | 502 | 503,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export function errorBody(code: string, message: string, field?: string) {
  return { error: field === undefined ? { code, message } : { code, message, field } };
}

/**
 * Seconds a client waits before sending a write again that the database refused busy. The write
 * already waited the whole busy timeout (5 s) for another process's lock; the clients add their
 * own jitter above it (edge daemon, fleet-sim), so a herd refused together does not return together.
 */
export const DATABASE_BUSY_RETRY_AFTER_SEC = 1;

/** An error's answer, the same on every route whichever way it is served (app.ts's onError, device-api/direct-serve.ts). */
export interface ErrorAnswer {
  status: number;
  body: ReturnType<typeof errorBody>;
  headers?: Record<string, string>;
  /** What the request log says of it: a refusal is the caller's (info), busy is the database's (warn), internal a defect (error). */
  level: 'info' | 'warn' | 'error';
}

/**
 * A refusal (HttpError) as it says; a write the database refused busy as 503 with Retry-After
 * (issue 17): nothing was written, the same request may succeed shortly, and a 500 would say a
 * defect; anything else an internal error whose details stay in the log.
 */
export function errorAnswerOf(err: unknown): ErrorAnswer {
  if (err instanceof HttpError) return { status: err.status, body: errorBody(err.code, err.message, err.field), level: 'info' };
  if (isDatabaseBusy(err)) {
    return {
      status: 503,
      body: errorBody('database-busy', `the database was busy and nothing was written; try again in ${DATABASE_BUSY_RETRY_AFTER_SEC} s`),
      headers: { 'Retry-After': String(DATABASE_BUSY_RETRY_AFTER_SEC) },
      level: 'warn',
    };
  }
  return { status: 500, body: errorBody('internal', 'internal error; see the control plane log with this request id'), level: 'error' };
}

/** The log line of an error's answer, the same on every route: none for a refusal (the request's own line says it). */
export function logErrorAnswer(a: ErrorAnswer, err: unknown, log: () => Logger | undefined): void {
  if (a.level !== 'info') log()?.[a.level]({ err }, a.level === 'warn' ? 'database busy; nothing written' : 'request failed');
}

export function fieldOf(issue: z.core.$ZodIssue): string | undefined {
  return issue.path.length ? issue.path.map(String).join('.') : undefined;
}

/** Validates a value with a schema; the first issue becomes a 400 naming the field. */
export function validate<S extends z.ZodType>(schema: S, value: unknown, where = 'body'): z.infer<S> {
  const res = schema.safeParse(value);
  if (!res.success) {
    const issue = res.error.issues[0];
    const field = fieldOf(issue);
    throw new HttpError(400, 'invalid-' + where, `${where}${field ? ` field ${field}` : ''}: ${issue.message}`, field);
  }
  return res.data;
}

const INVALID_JSON = () => new HttpError(400, 'invalid-json', 'request body is not valid JSON');

export async function jsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
  let text: string;
  try {
    // Bytes, not c.req.text(): that drops a BOM itself, and jsonTextBody drops one (as Request.json()).
    text = Buffer.from(await c.req.arrayBuffer()).toString('utf8');
  } catch {
    throw INVALID_JSON();
  }
  return jsonTextBody(text, schema);
}

/** A request body read as text (UTF-8, a BOM dropped as Request.json() drops it), parsed and validated like jsonBody. */
export function jsonTextBody<S extends z.ZodType>(text: string, schema: S): z.infer<S> {
  let value: unknown;
  try {
    value = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch {
    throw INVALID_JSON();
  }
  return validate(schema, value);
}

export function queryOf<S extends z.ZodType>(c: Context, schema: S): z.infer<S> {
  return validate(schema, c.req.query(), 'query');
}

export function bearerOf(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  return m?.[1];
}
