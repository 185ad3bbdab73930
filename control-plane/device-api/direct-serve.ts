import type { IncomingMessage, ServerResponse } from 'node:http';
import { requestIdFrom } from '../../common/request-id.js';
import type { Logger } from '../../common/log.js';
import { answerCheckerFromEnv, contractViolation } from '../../protocol/answer-check.js';
import { controlPlaneApi } from '../../protocol/control-plane.js';
import type { ControlPlaneContext } from '../context.js';
import { errorAnswerOf, errorBody, logErrorAnswer } from '../http.js';
import type { ControlPlaneMetrics } from '../metrics.js';

/**
 * What the app (app.ts, index.ts) gives every route, for the few hot routes answered on node:http
 * ahead of the Hono adapter (enroll-direct.ts, desired-direct.ts, report-direct.ts): the request id (X-Request-Id, a
 * logger bound to it), HttpError and crash answers, under test the answer checked against protocol/
 * (BERTH_CHECK_ANSWERS), the worker header, the request metrics and the request log line of a
 * refusal. Each route decides only its answer.
 */

/** An answer to write: a JSON body, or none (204, 304). */
export interface DirectAnswer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /**
   * The route the request metrics name when it is not the route's own: Hono labels a refusal made
   * by a sub-app's middleware with the middleware's path (`/v1/device/*`), and dashboards keep
   * their series whichever way the request was served.
   */
  metricsRoute?: string;
}

export interface DirectOptions {
  metrics: ControlPlaneMetrics;
  /** `--workers`: marks each answer with the worker that made it, as index.ts does for Hono's. */
  workerId?: number;
  env?: NodeJS.ProcessEnv;
}

/** Per request: its id, and its logger (made on first use: a successful request logs nothing). */
export interface DirectCaller {
  requestId: string;
  log: () => Logger;
}

export type DirectServe = (req: IncomingMessage, res: ServerResponse, method: string, path: string, answer: (caller: DirectCaller) => Promise<DirectAnswer>) => void;

/** The writer of direct answers for one control plane context. */
export function directServer(ctx: ControlPlaneContext, opts: DirectOptions): DirectServe {
  const check = answerCheckerFromEnv(controlPlaneApi, opts.env ?? process.env);
  const worker = opts.workerId === undefined ? undefined : String(opts.workerId);

  async function serve(req: IncomingMessage, res: ServerResponse, method: string, path: string, answer: (caller: DirectCaller) => Promise<DirectAnswer>): Promise<void> {
    const started = performance.now();
    const requestId = requestIdFrom(req.headers['x-request-id'] as string | undefined);
    let log: Logger | undefined;
    const logOf = () => (log ??= ctx.log.child({ requestId }));
    let a: DirectAnswer;
    try {
      a = await answer({ requestId, log: logOf });
    } catch (err) {
      // As app.ts's onError: a refusal as it says, a busy database 503 with Retry-After, else 500.
      const e = errorAnswerOf(err);
      logErrorAnswer(e, err, logOf);
      a = { status: e.status, body: e.body, headers: e.headers };
    }
    let body = a.body === undefined ? undefined : JSON.stringify(a.body);
    const mismatch = check?.(method, path, path, { status: a.status, contentType: body === undefined ? null : 'application/json', body: body ?? '' });
    // The wrong answer's headers go with it, as in protocol/answer-check.ts.
    if (mismatch) {
      a = { status: 500, body: errorBody('contract-violation', contractViolation(mismatch)) };
      body = JSON.stringify(a.body);
    }
    const headers: Record<string, string | number> = body === undefined ? { 'X-Request-Id': requestId, ...a.headers } : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'X-Request-Id': requestId, ...a.headers };
    if (worker) headers['x-berth-worker'] = worker;
    res.writeHead(a.status, headers);
    res.end(body);
    const seconds = (performance.now() - started) / 1000;
    opts.metrics.observeRequest(method, a.metricsRoute ?? path, a.status, seconds);
    // As app.ts: these routes' successes are counted, not logged (polls and enrollments are the bulk of the traffic).
    if (a.status >= 400) logOf().info({ method, path, status: a.status, ms: Math.round(seconds * 1000) }, 'request');
  }

  return (req, res, method, path, answer) => {
    serve(req, res, method, path, answer).catch((err: unknown) => {
      ctx.log.error({ err, path }, 'direct answer failed');
      res.destroy();
    });
  };
}

/** The body as UTF-8 text; null past `max` bytes (the rest is left unread). */
export function bodyText(req: IncomingMessage, max: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (b: Buffer) => {
      size += b.length;
      if (size > max) {
        req.off('data', onData);
        resolve(null);
      } else chunks.push(b);
    };
    req.on('data', onData);
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
    req.on('close', () => {
      if (!req.complete) reject(new Error('request closed before its body was read'));
    });
  });
}

/** As app.ts limits every /v1 body (1 MiB). */
export const MAX_BODY = 1 << 20;

/** app.ts's 413 for a /v1 body past 1 MiB. */
export function bodyTooLarge(): DirectAnswer {
  // `Connection: close`: the unread rest of the body makes the connection unusable for the next request.
  return { status: 413, body: errorBody('body-too-large', 'request body is larger than 1 MiB'), headers: { Connection: 'close' } };
}
