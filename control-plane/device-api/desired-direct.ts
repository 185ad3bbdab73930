import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ControlPlaneContext } from '../context.js';
import { checkedDevice, claimsOf, directDeviceOf, directRefusal } from './device-auth.js';
import { answerPoll, startPoll, waitOf } from './desired-poll.js';
import { directServer, type DirectAnswer, type DirectOptions } from './direct-serve.js';
import type { Departure } from '../devices/desired-waiters.js';

/**
 * The device's desired-state poll (GET /v1/device/desired, with its long-poll wait) on node:http
 * directly, ahead of the Hono adapter (issue 17), as enroll-direct.ts serves enrollment. Through
 * @hono/node-server every poll became a WHATWG Request (headers, URL) and every answer a Response
 * copied back onto Node's, dispatched through the app's middleware; a held poll kept all of it
 * (and an AbortController the adapter made for the request) for up to a minute, 100,000 of them
 * at once in fleet-sim. Here the same steps answer: the device's token and record (deviceOf's
 * two halves, claimsOf and checkedDevice, the token cache included; the record read with the
 * poll's sequence in one statement), the `wait` query, the wait and the answer (answerPoll:
 * ETag/304, 204, the change feed's wake-ups, pending log requests), with what direct-serve.ts
 * gives every direct route (request id, metrics, refusal log, worker header, the answer checked
 * under test).
 *
 * Taken here only what needs no decoding to read alike: GET, the path exactly, no query or a
 * single `wait=` of plain characters, and no body (no Transfer-Encoding, Content-Length absent or
 * 0). Everything else (HEAD, `?wait=%31`, two parameters, a body to limit) goes to Hono, whose
 * answers these match.
 */

const PATH = '/v1/device/desired';
const PLAIN_WAIT = /^\?wait=([A-Za-z0-9._~-]*)$/;

/** The query as Hono's `c.req.query()` reads it for the URLs taken here; null for any other URL. */
function queryOf(url: string): Record<string, string> | null {
  if (url === PATH) return {};
  if (!url.startsWith(PATH)) return null;
  const m = PLAIN_WAIT.exec(url.slice(PATH.length));
  return m ? { wait: m[1] } : null;
}

export type DesiredDirectOptions = DirectOptions;

/** The listener for common/serve.ts's `direct`: true when it took the request. */
export function desiredDirect(ctx: ControlPlaneContext, opts: DesiredDirectOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const serve = directServer(ctx, opts);

  async function answer(req: IncomingMessage, res: ServerResponse, query: Record<string, string>): Promise<DirectAnswer> {
    let wait: number;
    try {
      wait = waitOf(query);
    } catch (err) {
      // Refused after the device check, as the Hono route orders them.
      const device = await directDeviceOf(ctx, req);
      if ('status' in device) return device;
      throw err;
    }
    const claims = await directRefusal(() => claimsOf(ctx, req.headers.authorization));
    if ('status' in claims) return claims;
    // The waiter entered before the one read of the device row and its sequence (point-reads.ts):
    // a change committed after that read wakes it.
    const departed = () => new ResponseDeparture(res);
    const start = startPoll(ctx, claims.sub, wait, departed);
    try {
      const read = await ctx.reads.deviceAndSequence(claims.sub);
      const device = await directRefusal(async () => checkedDevice(ctx, claims, read.device, () => req.socket));
      if ('status' in device) return device;
      const a = await answerPoll(ctx, device.id, req.headers['if-none-match'], wait, departed, { start, sequence: read.sequence });
      return a.status === 200 ? a : { status: a.status, headers: a.headers };
    } finally {
      // A refused poll's waiter; an answered one has left already (leaving twice is nothing).
      start.waiter?.leave();
    }
  }

  return (req, res) => {
    if (req.method !== 'GET' || req.headers['transfer-encoding'] !== undefined) return false;
    const length = req.headers['content-length'];
    if (length !== undefined && length !== '0') return false;
    const query = queryOf(req.url ?? '');
    if (!query) return false;
    serve(req, res, 'GET', PATH, () => answer(req, res, query));
    return true;
  };
}

/**
 * What tells a waiting poll that its client went away before its answer was written (it stops the
 * wait): the response's close, with no AbortController and EventTarget per waiting poll. One
 * listener at a time is all a poll needs (desired-waiters.ts adds one per wait and removes it).
 */
class ResponseDeparture implements Departure {
  aborted = false;
  private listener: (() => void) | undefined;
  constructor(res: ServerResponse) {
    res.once('close', () => {
      if (res.writableFinished) return;
      this.aborted = true;
      const l = this.listener;
      this.listener = undefined;
      l?.();
    });
  }
  addEventListener(_type: 'abort', listener: () => void): void {
    this.listener = listener;
  }
  removeEventListener(_type: 'abort', listener: () => void): void {
    if (this.listener === listener) this.listener = undefined;
  }
}
