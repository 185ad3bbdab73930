import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { OciError } from './errors.js';

/**
 * Requests the proxy refuses before any route sees them (issue 14, finding 11).
 */

/** The request target exactly as the client sent it, without its query (what the log records). */
export function rawTarget(env: unknown, url: string): string {
  const raw = (env as { incoming?: { url?: string } } | undefined)?.incoming?.url;
  return (raw ?? new URL(url).pathname + new URL(url).search).split('?')[0];
}

/**
 * Only origin-form targets (`/v2/…`): an absolute-form one (`GET http://host/v2/… HTTP/1.1`) is
 * what a forward proxy gets, which this is not; it used to reach the routes and end in a 500.
 */
export function originFormOnly(): MiddlewareHandler {
  return async (c, next) => {
    const target = rawTarget(c.env, c.req.url);
    if (!target.startsWith('/')) throw new OciError('NAME_INVALID', `request target ${JSON.stringify(target.slice(0, 200))} is not a path: this is a registry, not a forward proxy; send GET /v2/…`);
    await next();
  };
}

/** The largest warm request: a list of image references (about 1,000 of them). */
export const WARM_MAX_BODY = 256 * 1024;

/** Read no more of a warm request than that (a 104 MB body took the proxy from 77 to 364 MB). */
export function warmBodyLimit(): MiddlewareHandler {
  return bodyLimit({
    maxSize: WARM_MAX_BODY,
    onError: () => {
      throw new OciError('MANIFEST_INVALID', `warm: request body is larger than ${WARM_MAX_BODY / 1024} KiB`, undefined, 413);
    },
  });
}
