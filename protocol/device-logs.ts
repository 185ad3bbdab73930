import { z } from 'zod';
import { json, route, text } from './route.js';

/**
 * Device logs on demand (issue 15). The operator asks the control plane; the control plane tells the
 * gateway in its desired-state long poll (the header below, on every answer), so the gateway never
 * accepts a connection; the gateway claims the requests and uploads the lines, which the control
 * plane relays to the operator as they come and never stores.
 */

/** On desired-state answers: how many log requests wait for this device to claim them. */
export const LOG_REQUESTS_HEADER = 'berth-log-requests';

/** Per request: lines beyond this many bytes are not relayed (the request ends, saying so). */
export const LOG_BYTES_CAP = 4 << 20;
/** Requests open at once per device; one more is refused (429). */
export const LOG_REQUESTS_PER_DEVICE = 3;

/** Lines per container when a request gives neither `tail` nor `since`. */
export const LOG_TAIL_DEFAULT = 100;

export const logsQuery = z.object({
  service: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'a service name of the manifest').optional(),
  tail: z.coerce.number().int().min(0).max(10_000).optional(),
  /** `10m`, `2h` (how far back), as in `berth logs --since`. */
  since: z.string().regex(/^\d+(s|m|h|d)$/, 'a duration such as 30s, 10m, 2h, 1d').optional(),
  follow: z.enum(['true', 'false']).optional(),
});

export const logRequest = z.object({
  id: z.string(),
  /** null: every service of the running release. */
  service: z.string().nullable(),
  tail: z.number().int().nullable(),
  /** Unix seconds; null: from the start (within `tail`). */
  since: z.number().int().nullable(),
  follow: z.boolean(),
});
export type LogRequest = z.infer<typeof logRequest>;

/** One line, as the gateway uploads it (NDJSON) and the operator receives it. */
export const logLine = z.object({
  service: z.string(),
  stream: z.enum(['stdout', 'stderr']),
  line: z.string(),
});
/** The last NDJSON line the operator receives when the relay ends for a reason other than the end of the logs. */
export const logEnd = z.object({ end: z.string() });

export const logUploadResult = z.object({ lines: z.number().int(), ended: z.string() });

export const deviceLogRoutes = {
  read: route({
    method: 'get',
    path: '/v1/devices/:serial/logs',
    summary: "A gateway's container logs, relayed as NDJSON lines while they come (follow=true: until the client leaves); never stored; audited",
    auth: 'release-manager',
    query: logsQuery,
    responses: { 200: text('application/x-ndjson', 'one logLine per line; a final {"end": reason} when cut short') },
  }),
  claim: route({ method: 'post', path: '/v1/device/logs/claim', summary: 'The log requests waiting for this device; claimed by this call', auth: 'device', responses: { 200: json(z.object({ requests: z.array(logRequest) })) } }),
  upload: route({
    method: 'post',
    path: '/v1/device/logs/:id',
    summary: 'The lines of a claimed log request (NDJSON, streamed); answered when the logs end or the operator left (then stop)',
    auth: 'device',
    bodyTypes: ['application/x-ndjson'],
    responses: { 200: json(logUploadResult) },
  }),
};
