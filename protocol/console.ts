import { z } from 'zod';
import { auditEntry } from './operators.js';
import { json, route, roleSchema, text } from './route.js';

/**
 * The operator's console (issue 15): the page and its files under /ui/, and the three routes only
 * the console needs (who the token is, a stream of change notices, the audit log newest first).
 * Everything else it shows comes from the same routes the CLI calls.
 */

export const CONSOLE_ASSET_TYPES = ['text/javascript', 'text/css', 'image/svg+xml'];

export const consoleSession = z.object({ tokenId: z.string(), name: z.string(), role: roleSchema });

export const consoleAuditQuery = z.object({
  /** Entries older than this id (the `next` of the previous page). */
  before: z.coerce.number().int().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  /** Entries whose actor starts with this (`operator:tok_…`, `system:`). */
  actor: z.string().max(200).optional(),
  /** Entries whose action starts with this (`campaign.`, `webhook.create`). */
  action: z.string().max(200).optional(),
});
export const consoleAuditPage = z.object({ entries: z.array(auditEntry), next: z.number().int().nullable() });

export const consoleRoutes = {
  redirect: route({ method: 'get', path: '/ui', summary: 'The console (redirects to /ui/)', auth: 'none', responses: { 302: text('text/plain', 'to /ui/ (Location)') } }),
  page: route({ method: 'get', path: '/ui/', summary: 'The operator console: one page; it asks for a token and calls the API with it', auth: 'none', responses: { 200: text('text/html', 'the page') } }),
  asset: route({ method: 'get', path: '/ui/assets/:file', summary: "The console's scripts and styles (from the package, nothing from a CDN)", auth: 'none', responses: { 200: text(CONSOLE_ASSET_TYPES, 'the file') } }),
  session: route({ method: 'get', path: '/v1/console/session', summary: 'Who the operator token is: its id, name and role (what the console shows and offers)', auth: 'viewer', responses: { 200: json(consoleSession) } }),
  stream: route({
    method: 'get',
    path: '/v1/console/stream',
    summary: 'Server-Sent Events: `change` when devices, campaigns, manifests or the audit log changed (the console then reads again what it shows); a comment every 15 s keeps it open',
    auth: 'viewer',
    responses: { 200: text('text/event-stream', 'the event stream') },
  }),
  audit: route({ method: 'get', path: '/v1/console/audit', summary: 'The audit log newest first, paged, filtered by actor and action prefixes', auth: 'admin', query: consoleAuditQuery, responses: { 200: json(consoleAuditPage) } }),
};
