import type { IncomingMessage, ServerResponse } from 'node:http';
import { deviceReport } from '../../protocol/device.js';
import type { ControlPlaneContext } from '../context.js';
import { jsonTextBody } from '../http.js';
import { directDeviceOf } from './device-auth.js';
import { bodyText, bodyTooLarge, directServer, MAX_BODY, type DirectAnswer, type DirectOptions } from './direct-serve.js';
import { acceptReport } from './report-accept.js';

/**
 * The device's report (POST /v1/device/report) on node:http directly, ahead of the Hono adapter
 * (issue 17), as desired-direct.ts serves polls: no WHATWG Request and body stream, no Response
 * copied back, no middleware chain. The same steps answer, in Hono's order: the 1 MiB body limit
 * (app.ts's, decided from Content-Length before anything else), the device's token and record
 * (deviceOf), the body parsed and validated (jsonTextBody, deviceReport), then acceptReport
 * (report-accept.ts: the sighting, the batched write, 202 after the commit), with what
 * direct-serve.ts gives every direct route.
 *
 * Taken here only: POST, the path exactly (no query), and a body framed by a Content-Length of
 * digits or none at all. A chunked body (Transfer-Encoding) goes to Hono, whose streamed limit
 * refuses it only as it is read.
 */

const PATH = '/v1/device/report';
/** How Hono labels a refusal of app.ts's `/v1/*` body limit in the request metrics. */
const LIMIT_ROUTE = '/v1/*';

export type ReportDirectOptions = DirectOptions;

/** The listener for common/serve.ts's `direct`: true when it took the request. */
export function reportDirect(ctx: ControlPlaneContext, opts: ReportDirectOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const serve = directServer(ctx, opts);

  async function answer(req: IncomingMessage, length: number): Promise<DirectAnswer> {
    if (length > MAX_BODY) return { ...bodyTooLarge(), metricsRoute: LIMIT_ROUTE };
    const device = await directDeviceOf(ctx, req);
    if ('status' in device) return device;
    // Node's parser reads no more than the Content-Length checked above.
    const text = await bodyText(req, MAX_BODY);
    if (text === null) return bodyTooLarge();
    return acceptReport(ctx, device.id, jsonTextBody(text, deviceReport));
  }

  return (req, res) => {
    if (req.method !== 'POST' || req.url !== PATH || req.headers['transfer-encoding'] !== undefined) return false;
    const length = req.headers['content-length'] ?? '0';
    if (!/^\d+$/.test(length)) return false;
    serve(req, res, 'POST', PATH, () => answer(req, Number(length)));
    return true;
  };
}
