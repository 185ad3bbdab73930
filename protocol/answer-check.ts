import { appendFileSync } from 'node:fs';
import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import { answerMismatch } from './check.js';
import type { Api } from './route.js';

/**
 * Under test, a service checks every answer it gives against its contract. An answer the contract
 * does not describe becomes a 500 naming the route and the field, and is recorded, so the test that
 * caused it fails even when it never looks at that body (test/integration/contract-setup.ts).
 */

/** `BERTH_CHECK_ANSWERS=FILE`: check every answer; append each mismatch to FILE as a JSON line. */
export const CHECK_ANSWERS_ENV = 'BERTH_CHECK_ANSWERS';

export interface AnswerMismatch {
  method: string;
  /** The route as declared (`/v1/devices/:serial`), or the request path when no route matched. */
  route: string;
  status: number;
  problem: string;
}

export function checkAnswers(api: Api, onMismatch: (m: AnswerMismatch) => void, errorBody: (message: string) => unknown): MiddlewareHandler {
  const routes = new Map(api.routes.map((r) => [`${r.method.toUpperCase()} ${r.path}`, r]));
  return async (c, next) => {
    await next();
    const route = routes.get(`${c.req.method} ${routePath(c)}`);
    const res = c.res;
    // A body written straight to the socket (blobs, deltas) has gone; there is nothing left to check.
    if (res.headers.get('x-hono-already-sent')) return;
    // An event stream (or a followed NDJSON log) may never end: its status and media type are checked, not its body.
    const type = res.headers.get('content-type') ?? '';
    const streaming = type.startsWith('text/event-stream') || type.startsWith('application/x-ndjson');
    const problem = answerMismatch(api, route, { status: res.status, contentType: res.headers.get('content-type'), body: streaming ? '' : await res.clone().text() });
    if (problem === null) return;
    const mismatch = { method: c.req.method, route: route?.path ?? c.req.path, status: res.status, problem };
    onMismatch(mismatch);
    // Drop the wrong answer's headers (ETag, length) with it.
    c.res = undefined;
    c.res = new Response(JSON.stringify(errorBody(`${mismatch.method} ${mismatch.route} answered ${mismatch.status} outside its contract: ${problem}`)), {
      status: 500,
      headers: { 'content-type': 'application/json' },
    });
  };
}

/** The check as the environment asks for it (vitest's integration setup sets the variable), or null. */
export function answerCheckFromEnv(api: Api, env: NodeJS.ProcessEnv, errorBody: (message: string) => unknown): MiddlewareHandler | null {
  const file = env[CHECK_ANSWERS_ENV];
  if (!file) return null;
  return checkAnswers(api, (m) => appendFileSync(file, JSON.stringify(m) + '\n'), errorBody);
}
