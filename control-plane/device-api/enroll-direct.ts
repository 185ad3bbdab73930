import type { IncomingMessage, ServerResponse } from 'node:http';
import { enrollChallengeRequest, enrollRequest } from '../../protocol/device.js';
import type { ControlPlaneContext } from '../context.js';
import { jsonTextBody } from '../http.js';
import { bodyText, bodyTooLarge, directServer, MAX_BODY, type DirectAnswer, type DirectOptions } from './direct-serve.js';
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

const ROUTES: Record<string, 'challenge' | 'enroll' | undefined> = { '/v1/enroll/challenge': 'challenge', '/v1/enroll': 'enroll' };

export type EnrollDirectOptions = DirectOptions;

/** The listener for common/serve.ts's `direct`: true when it took the request. */
export function enrollDirect(ctx: ControlPlaneContext, opts: EnrollDirectOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const enrollment = enrollmentOf(ctx);
  const serve = directServer(ctx, opts);

  async function answer(req: IncomingMessage, route: 'challenge' | 'enroll', caller: EnrollCaller): Promise<DirectAnswer> {
    const length = req.headers['content-length'];
    if (req.headers['transfer-encoding'] === undefined && length !== undefined && Number(length) > MAX_BODY) return bodyTooLarge();
    const limited = await enrollment.admit(caller);
    if (limited) return limited;
    const text = await bodyText(req, MAX_BODY);
    if (text === null) return bodyTooLarge();
    return route === 'challenge' ? enrollment.challenge(caller, jsonTextBody(text, enrollChallengeRequest)) : enrollment.enroll(caller, jsonTextBody(text, enrollRequest));
  }

  return (req, res) => {
    const route = req.method === 'POST' ? ROUTES[req.url ?? ''] : undefined;
    if (!route) return false;
    serve(req, res, 'POST', req.url as string, (c) => answer(req, route, { address: req.socket.remoteAddress, socket: req.socket, log: c.log }));
    return true;
  };
}
