import { z } from 'zod';
import { SECRET_NAME_RE } from '../manifests/secrets.js';
import { errorEnvelope, json, route } from './route.js';

/**
 * Secrets an operator sets for the manifests' `secrets:` (issue 13). A value travels once, in a
 * request body (never a URL or argv), is stored encrypted, and leaves the control plane only as a
 * JWE addressed to one device (protocol/secret-box.ts). Nothing here ever answers a value.
 */

export const secretName = z.string().regex(SECRET_NAME_RE, 'a secret name: 1-64 of letters, digits, _ . - (starting with a letter or digit)');
export const secretScopes = ['device', 'selector', 'fleet'] as const;
export type SecretScope = (typeof secretScopes)[number];

/** Secret values up to 64 KiB: certificates and keys, not data sets (the document carries them). */
export const MAX_SECRET_BYTES = 65_536;

const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64');

export const secretSetBody = z.object({
  scope: z.enum(secretScopes),
  /** The device's serial (scope device) or a label selector (scope selector); absent for the fleet. */
  target: z.string().min(1).optional(),
  /** The value, base64 (a secret may be binary). */
  value: base64.max(Math.ceil(MAX_SECRET_BYTES / 3) * 4),
});

export const secretScopeQuery = z.object({ scope: z.enum(secretScopes), target: z.string().min(1).optional() });

export const secretView = z.object({
  name: z.string(),
  scope: z.enum(secretScopes),
  /** Serial (device), selector text (selector), null (fleet). */
  target: z.string().nullable(),
  /** 1 on the first set, +1 on every rotation. */
  version: z.number().int().positive(),
  updatedAt: z.string(),
  updatedBy: z.string(),
});
export const secretList = z.object({ secrets: z.array(secretView) });

/** The up-front check of a rollout's secrets (device-secrets/check.ts). */
export const secretsCheck = z.object({
  secrets: z.array(z.string()),
  devices: z.number().int(),
  ok: z.boolean(),
  lackingDevices: z.number().int(),
  /** Up to 10 devices that lack something, each with what. */
  sample: z.array(z.object({ serial: z.string(), problems: z.array(z.string()) })),
  message: z.string(),
});

/** A rollout refused (422, code `secrets-lacking`) because target devices lack a secret or an encryption key. */
export const secretsRefusal = errorEnvelope.extend({ secretsCheck });

export const secretRoutes = {
  set: route({
    method: 'put',
    path: '/v1/secrets/:name',
    summary: 'Set (or rotate) a secret for a device, a selector or the fleet; the value is stored encrypted and never answered (audited without it)',
    auth: 'release-manager',
    body: secretSetBody,
    responses: { 200: json(secretView, 'the secret as stored, without its value') },
  }),
  list: route({
    method: 'get',
    path: '/v1/secrets',
    summary: 'Secrets: names, scopes and versions, never values',
    auth: 'release-manager',
    responses: { 200: json(secretList) },
  }),
  remove: route({
    method: 'delete',
    path: '/v1/secrets/:name',
    summary: 'Remove a secret from one scope (audited); devices already assigned keep the copy of their document',
    auth: 'release-manager',
    query: secretScopeQuery,
    responses: { 200: json(secretView, 'the secret removed') },
  }),
};
