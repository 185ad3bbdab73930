import { appendFileSync } from 'node:fs';
import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import { answerMismatch, type Answer } from './check.js';
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

/** What the 500 that replaces an answer outside the contract says. */
export function contractViolation(m: AnswerMismatch): string {
  return `${m.method} ${m.route} answered ${m.status} outside its contract: ${m.problem}`;
}

/** Checks one answer against the route declared for `method routePath`: the mismatch (given to onMismatch too), or null. */
export type AnswerChecker = (method: string, routePath: string, path: string, answer: Answer) => AnswerMismatch | null;

export function answerChecker(api: Api, onMismatch: (m: AnswerMismatch) => void): AnswerChecker {
  const routes = new Map(api.routes.map((r) => [`${r.method.toUpperCase()} ${r.path}`, r]));
  return (method, routePath, path, answer) => {
    const route = routes.get(`${method} ${routePath}`);
    const problem = answerMismatch(api, route, answer);
    if (problem === null) return null;
    const mismatch = { method, route: route?.path ?? path, status: answer.status, problem };
    onMismatch(mismatch);
    return mismatch;
  };
}

export function checkAnswers(api: Api, onMismatch: (m: AnswerMismatch) => void, errorBody: (message: string) => unknown): MiddlewareHandler {
  const check = answerChecker(api, onMismatch);
  return async (c, next) => {
    await next();
    const res = c.res;
    // A body written straight to the socket (blobs, deltas) has gone; there is nothing left to check.
    if (res.headers.get('x-hono-already-sent')) return;
    // An event stream (or a followed NDJSON log) may never end: its status and media type are checked, not its body.
    const type = res.headers.get('content-type') ?? '';
    const streaming = type.startsWith('text/event-stream') || type.startsWith('application/x-ndjson');
    const mismatch = check(c.req.method, routePath(c), c.req.path, { status: res.status, contentType: res.headers.get('content-type'), body: streaming ? '' : await res.clone().text() });
    if (mismatch === null) return;
    // Drop the wrong answer's headers (ETag, length) with it.
    c.res = undefined;
    c.res = new Response(JSON.stringify(errorBody(contractViolation(mismatch))), {
      status: 500,
      headers: { 'content-type': 'application/json' },
    });
  };
}

/** The file `BERTH_CHECK_ANSWERS` names, where each mismatch is appended as a JSON line; null when answers are not checked. */
function mismatchFile(env: NodeJS.ProcessEnv): ((m: AnswerMismatch) => void) | null {
  const file = env[CHECK_ANSWERS_ENV];
  return file ? (m) => appendFileSync(file, JSON.stringify(m) + '\n') : null;
}

/** The check as the environment asks for it (vitest's integration setup sets the variable), or null. */
export function answerCheckFromEnv(api: Api, env: NodeJS.ProcessEnv, errorBody: (message: string) => unknown): MiddlewareHandler | null {
  const record = mismatchFile(env);
  return record ? checkAnswers(api, record, errorBody) : null;
}

/** The same, for a route served without Hono: the checker, or null. */
export function answerCheckerFromEnv(api: Api, env: NodeJS.ProcessEnv): AnswerChecker | null {
  const record = mismatchFile(env);
  return record ? answerChecker(api, record) : null;
}
