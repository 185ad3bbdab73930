import { z } from 'zod';
import { json, route } from './route.js';

/**
 * The Docker token-auth endpoint for the registry proxy: docker, skopeo and containerd get a pull
 * token here (operator token as the Basic password, or a Bearer operator or device token).
 */

export const registryTokenQuery = z.object({
  service: z.string().optional().meta({ description: 'berth-registry-proxy' }),
  scope: z.string().optional().meta({ description: 'repository:ALIAS/REPO:pull (repeatable)' }),
});

/** The Docker token spec's answer: `token` and `access_token` are the same JWT. */
export const registryToken = z.object({
  token: z.string(),
  access_token: z.string(),
  /** Seconds. */
  expires_in: z.number().int(),
  issued_at: z.string(),
});

export const registryTokenRoutes = {
  token: route({
    method: 'get',
    path: '/v1/registry/token',
    summary: 'Docker token-auth endpoint for the registry proxy (Basic with an operator token as password, or Bearer operator or device token)',
    auth: 'viewer',
    query: registryTokenQuery,
    responses: { 200: json(registryToken, 'a pull token for the scopes the caller may read') },
  }),
};
