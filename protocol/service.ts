import { z } from 'zod';
import { jwksSchema } from './device.js';
import { json, route, text } from './route.js';

/** What every client may read without a token: liveness, metrics, the keys, this description. */

export const health = z.object({ status: z.literal('ok') });

/** What the registry proxy polls so a revocation reaches it in seconds, not when pull tokens expire. */
export const revocationList = z.object({
  kids: z.array(z.string()).meta({ description: 'revoked signing keys: any token they signed is refused' }),
  subjects: z.array(z.string()).meta({ description: 'token subjects (device:ID, operator:TOKEN-ID) revoked while their pull tokens may still live' }),
});

/** An OpenAPI 3.1 document; its own schema is the OpenAPI specification's. */
export const openApiDocumentSchema = z.looseObject({ openapi: z.string(), info: z.looseObject({ title: z.string(), version: z.string() }), paths: z.record(z.string(), z.unknown()) });

/** The files /docs serves from swagger-ui-dist, besides its own page and initializer. */
export const DOCS_ASSET_TYPES = ['text/css', 'text/javascript', 'image/png'];

export const serviceRoutes = {
  health: route({ method: 'get', path: '/healthz', summary: 'Liveness and database reachability', auth: 'none', responses: { 200: json(health) } }),
  metrics: route({ method: 'get', path: '/metrics', summary: 'Prometheus metrics', auth: 'none', responses: { 200: text('text/plain', 'Prometheus text exposition format') } }),
  openapi: route({ method: 'get', path: '/openapi.json', summary: 'This API description (OpenAPI 3.1)', auth: 'none', responses: { 200: json(openApiDocumentSchema) } }),
  docs: route({ method: 'get', path: '/docs', summary: 'This API description, rendered (Swagger UI, served from this process)', auth: 'none', responses: { 200: text('text/html', 'the page') } }),
  docsAsset: route({
    method: 'get',
    path: '/docs/:file',
    summary: "The rendered description's scripts, styles and icons",
    auth: 'none',
    responses: { 200: text(DOCS_ASSET_TYPES, 'the file') },
  }),
  revocations: route({ method: 'get', path: '/v1/revocations', summary: 'Revoked signing keys and token subjects (the registry proxy polls it)', auth: 'none', responses: { 200: json(revocationList) } }),
  jwks: route({ method: 'get', path: '/.well-known/jwks.json', summary: 'Public keys that sign deployment documents and tokens', auth: 'none', responses: { 200: json(jwksSchema) } }),
};
