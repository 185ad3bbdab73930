import type { IncomingMessage, ServerResponse } from 'node:http';
import { requestIdFrom } from '../../common/request-id.js';
import type { Logger } from '../../common/log.js';
import { answerCheckerFromEnv, contractViolation } from '../../protocol/answer-check.js';
import { controlPlaneApi } from '../../protocol/control-plane.js';
import { enrollChallengeRequest, enrollRequest } from '../../protocol/device.js';
import type { ControlPlaneContext } from '../context.js';
import { errorBody, HttpError, jsonTextBody } from '../http.js';
import type { ControlPlaneMetrics } from '../metrics.js';
import { enrollmentOf, type EnrollCaller } from './enrollment.js';

/**
 * The two enrollment routes on node:http directly, ahead of Hono (issue 17: ≥ 2,000 enrollments/s).
 * Through @hono/node-server every request became a WHATWG Request (headers, URL, body stream) and
 * every answer a Response copied back onto Node's, then Hono dispatched it through the app's
 * middleware: measured with --cpu-prof, about a fifth of an enrollment's CPU outside the database
 * (control-plane/SCALING.md). Here the same Enrollment (enrollment.ts) answers, with everything
 * around it the app gives every route: the request id (X-Request-Id, a logger bound to it), the
 * 1 MiB body limit, the per-address budget, HttpError and crash answers, the request metrics, the
 * request log line of a refusal, the worker header, and under test the answer checked against
 * protocol/ (BERTH_CHECK_ANSWERS). Anything else (another method, a query string) goes to Hono.
 */

/** As app.ts limits every /v1 body. */
const MAX_BODY = 1 << 20;
const ROUTES: Record<string, 'challenge' | 'enroll' | undefined> = { '/v1/enroll/challenge': 'challenge', '/v1/enroll': 'enroll' };

/** An EnrollAnswer, or a refusal made here. */
interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export interface EnrollDirectOptions {
  metrics: ControlPlaneMetrics;
  /** `--workers`: marks each answer with the worker that made it, as index.ts does for Hono's. */
  workerId?: number;
  env?: NodeJS.ProcessEnv;
}

/** The listener for common/serve.ts's `direct`: true when it took the request. */
export function enrollDirect(ctx: ControlPlaneContext, opts: EnrollDirectOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const enrollment = enrollmentOf(ctx);
  const check = answerCheckerFromEnv(controlPlaneApi, opts.env ?? process.env);
  const worker = opts.workerId === undefined ? undefined : String(opts.workerId);

  async function answer(req: IncomingMessage, route: 'challenge' | 'enroll', caller: EnrollCaller): Promise<Answer> {
    const length = req.headers['content-length'];
    if (req.headers['transfer-encoding'] === undefined && length !== undefined && Number(length) > MAX_BODY) return tooLarge();
    const limited = await enrollment.admit(caller);
    if (limited) return limited;
    const text = await bodyText(req, MAX_BODY);
    if (text === null) return tooLarge();
    return route === 'challenge' ? enrollment.challenge(caller, jsonTextBody(text, enrollChallengeRequest)) : enrollment.enroll(caller, jsonTextBody(text, enrollRequest));
  }

  async function serve(req: IncomingMessage, res: ServerResponse, path: string, route: 'challenge' | 'enroll'): Promise<void> {
    const started = performance.now();
    const requestId = requestIdFrom(req.headers['x-request-id'] as string | undefined);
    let log: Logger | undefined;
    const logOf = () => (log ??= ctx.log.child({ requestId }));
    const caller: EnrollCaller = { address: req.socket.remoteAddress, socket: req.socket, log: logOf };
    let a: Answer;
    try {
      a = await answer(req, route, caller);
    } catch (err) {
      if (err instanceof HttpError) a = { status: err.status, body: errorBody(err.code, err.message, err.field) };
      else {
        logOf().error({ err }, 'request failed');
        a = { status: 500, body: errorBody('internal', 'internal error; see the control plane log with this request id') };
      }
    }
    let body = JSON.stringify(a.body);
    const mismatch = check?.('POST', path, path, { status: a.status, contentType: 'application/json', body });
    // The wrong answer's headers go with it, as in protocol/answer-check.ts.
    if (mismatch) {
      a = { status: 500, body: errorBody('contract-violation', contractViolation(mismatch)) };
      body = JSON.stringify(a.body);
    }
    const headers: Record<string, string | number> = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'X-Request-Id': requestId, ...a.headers };
    if (worker) headers['x-berth-worker'] = worker;
    res.writeHead(a.status, headers);
    res.end(body);
    const seconds = (performance.now() - started) / 1000;
    opts.metrics.observeRequest('POST', path, a.status, seconds);
    // As app.ts: a successful enrollment is counted, not logged (each is in the audit log).
    if (a.status >= 400) logOf().info({ method: 'POST', path, status: a.status, ms: Math.round(seconds * 1000) }, 'request');
  }

  return (req, res) => {
    const route = req.method === 'POST' ? ROUTES[req.url ?? ''] : undefined;
    if (!route) return false;
    serve(req, res, req.url as string, route).catch((err: unknown) => {
      ctx.log.error({ err }, 'enrollment answer failed');
      res.destroy();
    });
    return true;
  };
}

function tooLarge(): Answer {
  // `Connection: close`: the unread rest of the body makes the connection unusable for the next request.
  return { status: 413, body: errorBody('body-too-large', 'request body is larger than 1 MiB'), headers: { Connection: 'close' } };
}

/** The body as UTF-8 text; null past `max` bytes (the rest is left unread). */
function bodyText(req: IncomingMessage, max: number): Promise<string | null> {
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
    req.on('end', () => resolve((chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)).toString('utf8')));
    req.on('error', reject);
    req.on('close', () => {
      if (!req.complete) reject(new Error('request closed before its body was read'));
    });
  });
}
