import { z } from 'zod';
import { jwksSchema } from './device.js';
import { json, roleSchema, route } from './route.js';

/** People: operator tokens and their roles, the audit log, the signing key. */

const time = z.string().meta({ description: 'ISO 8601' });

export const tokenCreateBody = z.object({
  name: z.string().min(1).max(100),
  role: roleSchema,
  /** Lifetime in seconds; none: until revoked. */
  expiresIn: z.number().int().min(60).max(10 * 365 * 86400).optional(),
});
export const tokenView = z.object({
  id: z.string(),
  name: z.string(),
  role: roleSchema,
  createdAt: time,
  createdBy: z.string(),
  expiresAt: time.nullable(),
  revokedAt: time.nullable(),
});
/** The only answer that carries the token itself: it is stored hashed and never shown again. */
export const createdToken = tokenView.extend({ token: z.string() });
export const tokenList = z.object({ tokens: z.array(tokenView) });

export const auditQuery = z.object({
  since: z.string().optional().meta({ description: 'an ISO time, or the id of the last entry already read' }),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
  /** newest: the latest entries first (what a person reading the log wants); oldest: in order (a poller's `since`). */
  order: z.enum(['oldest', 'newest']).default('oldest'),
  /** Only entries older than this entry id (the `next` of a newest-first page). */
  before: z.coerce.number().int().min(1).optional().meta({ description: 'an audit entry id: only older entries' }),
});
export const auditEntry = z.object({
  id: z.number().int(),
  at: time,
  actor: z.string(),
  action: z.string(),
  target: z.string(),
  before: z.unknown(),
  after: z.unknown(),
});
/** `next`: null on the last page; else the cursor of the following page (`before` when newest first, `since` when oldest first). */
export const auditLog = z.object({ entries: z.array(auditEntry), next: z.number().int().nullable().optional() });

export const keyRotation = z.object({ kid: z.string(), retired: z.array(z.string()), jwks: jwksSchema });
export const signingKeyView = z.object({
  kid: z.string(),
  /** active: signs; retired: verifies what it signed until verifiesUntil; revoked: verifies nothing. */
  state: z.enum(['active', 'retired', 'revoked']),
  createdAt: time,
  retiredAt: time.nullable(),
  revokedAt: time.nullable(),
  verifiesUntil: time.nullable(),
  /** Published in /.well-known/jwks.json now. */
  inJwks: z.boolean(),
});
export const keyList = z.object({ keys: z.array(signingKeyView) });
export const keyRevocation = z.object({ kid: z.string(), revoked: z.literal(true), active: z.string(), jwks: jwksSchema });

export const operatorRoutes = {
  createToken: route({
    method: 'post',
    path: '/v1/tokens',
    summary: 'Create an operator token (shown once)',
    auth: 'admin',
    body: tokenCreateBody,
    responses: { 201: json(createdToken, 'created; the token is in this answer only') },
  }),
  listTokens: route({
    method: 'get',
    path: '/v1/tokens',
    summary: 'List operator tokens (never the tokens themselves)',
    auth: 'admin',
    responses: { 200: json(tokenList) },
  }),
  revokeToken: route({
    method: 'delete',
    path: '/v1/tokens/:id',
    summary: 'Revoke an operator token (revoking it again changes nothing)',
    auth: 'admin',
    responses: { 200: json(tokenView, 'the token, revoked') },
  }),
  audit: route({
    method: 'get',
    path: '/v1/audit',
    summary: 'The append-only audit log, oldest first or newest first (order), paged (limit; next is the since or before of the following page)',
    auth: 'admin',
    query: auditQuery,
    responses: { 200: json(auditLog) },
  }),
  listKeys: route({
    method: 'get',
    path: '/v1/keys',
    summary: 'The signing keys, newest first, with their state (active, retired, revoked); never a private key',
    auth: 'admin',
    responses: { 200: json(keyList) },
  }),
  rotateKey: route({
    method: 'post',
    path: '/v1/keys/rotate',
    summary: 'Rotate the signing key (the old one stays in the JWKS until what it signed expired)',
    auth: 'admin',
    responses: { 200: json(keyRotation, 'the new key id, the ones it retired, and the JWKS now') },
  }),
  revokeKey: route({
    method: 'post',
    path: '/v1/keys/:kid/revoke',
    summary: 'Revoke a signing key at once (a leaked key): out of the JWKS, everything it signed refused; the active key is rotated away first and every device gets its document signed anew',
    auth: 'admin',
    responses: { 200: json(keyRevocation, 'the key, revoked; the key that signs now; the JWKS now') },
  }),
};
