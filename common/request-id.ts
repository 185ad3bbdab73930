import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { ServerResponse } from 'node:http';
import type { MiddlewareHandler } from 'hono';
import { newOpId, type Logger } from './log.js';

/** What an incoming X-Request-Id may look like to be kept: it lands in logs and a response header. */
const SANE_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** The caller's id when it is sane (a proxy or client tying its logs to ours), else a new one. */
export function requestIdFrom(given: string | undefined): string {
  return given !== undefined && SANE_ID.test(given) ? given : newOpId();
}

export interface RequestIdVariables {
  requestId: string;
  /** The service logger with `requestId` bound: every line of this request carries it. */
  log: Logger;
}

/**
 * Gives each request an id (`c.var.requestId`), a child logger (`c.var.log`) and answers it in
 * `X-Request-Id`. A response written straight to the socket (the proxy's blob path) sets the
 * header itself.
 */
export function requestId(log: Logger): MiddlewareHandler<{ Variables: RequestIdVariables }> {
  return async (c, next) => {
    const id = requestIdFrom(c.req.header('x-request-id'));
    c.set('requestId', id);
    c.set('log', log.child({ requestId: id }));
    // Served by @hono/node-server: on the Node response, which merges it into whatever answer is
    // written. Set on `c.res` instead, it made the adapter build a WHATWG Headers object for every
    // answer, a few % of a poll's or an enrollment's CPU (issue 17).
    const outgoing = (c.env as { outgoing?: Partial<ServerResponse> } | undefined)?.outgoing;
    if (typeof outgoing?.setHeader === 'function' && !outgoing.headersSent) {
      outgoing.setHeader('X-Request-Id', id);
      return next();
    }
    await next();
    if (c.res !== RESPONSE_ALREADY_SENT) c.res.headers.set('X-Request-Id', id);
  };
}
