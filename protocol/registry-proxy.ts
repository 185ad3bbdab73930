import { z } from 'zod';
import { DELTA_MEDIA_TYPE, deltaPlanRequest, deltaPlanResponse } from '../common/delta/wire.js';
import { json, route, text, type Api } from './route.js';

/**
 * The registry proxy's own routes beside the OCI Distribution API (/v2/…, whose answers are the
 * upstream's bytes and are described by the OCI specification, not here).
 */

/** `{errors: [{code, message}]}`, the OCI form, for every refusal of the proxy. */
export const ociErrors = z.object({ errors: z.array(z.object({ code: z.string(), message: z.string(), detail: z.unknown().optional() })) });

export const upstreamList = z.object({ upstreams: z.array(z.object({ alias: z.string(), url: z.string(), host: z.string() })) });

export const warmBody = z.object({
  images: z.array(z.string().meta({ description: 'ALIAS/REPO:TAG or ALIAS/REPO@sha256:…' })),
  /** Only this os/arch[/variant] of a multi-platform image; all of them when absent. */
  platform: z.string().optional(),
});
export const warmResult = z.object({
  warmed: z.array(
    z.object({
      image: z.string(),
      digest: z.string(),
      /** Image manifests warmed (an index counts its chosen children). */
      manifests: z.number().int(),
      blobs: z.number().int(),
      /** Blobs that were not cached yet and were fetched now. */
      fetched: z.number().int(),
      bytes: z.number().int(),
    }),
  ),
});

export const proxyRoutes = {
  upstreams: route({
    method: 'get',
    path: '/berth/v1/upstreams',
    summary: 'The upstream registries and their aliases, so publishers map references to ALIAS/REPO',
    auth: 'none',
    responses: { 200: json(upstreamList) },
  }),
  warm: route({
    method: 'post',
    path: '/berth/v1/warm',
    summary: 'Fetch every blob of these images into the cache (same auth as pulls)',
    auth: 'pull-token',
    body: warmBody,
    responses: { 200: json(warmResult, 'what each image cost: blobs in it, fetched now, bytes') },
  }),
};

export const deltaQuery = z.object({ target: z.string().meta({ description: 'ALIAS/REPO@sha256:…, as the plan gives it' }), base: z.string() });

/** Layer deltas (registry-proxy/DELTA.md); their bodies are declared in common/delta/wire.ts. */
export const deltaRoutes = {
  plan: route({
    method: 'post',
    path: '/berth/v1/deltas/plan',
    summary: 'How to fetch each layer of an image the device updates to: present, as a delta from an image it has, in full, or pending',
    auth: 'pull-token',
    body: deltaPlanRequest,
    responses: {
      200: json(deltaPlanResponse, 'the plan'),
      202: json(deltaPlanResponse, 'a delta is being computed: ask again after retryAfter seconds (also in Retry-After)'),
    },
  }),
  delta: route({
    method: 'get',
    path: '/berth/v1/deltas/:digest',
    summary: 'A delta, served like a blob (Range, If-Range), to the holder of a token for both images',
    auth: 'pull-token',
    query: deltaQuery,
    responses: { 200: text(DELTA_MEDIA_TYPE, 'the delta'), 206: text(DELTA_MEDIA_TYPE, 'the range asked for') },
  }),
};

export const registryProxyApi: Api = {
  title: 'Berth registry proxy',
  version: '1',
  error: ociErrors,
  routes: [...Object.values(proxyRoutes), ...Object.values(deltaRoutes)],
};
