import { z } from 'zod';
import { json, route, type Api } from './route.js';

/**
 * The registry proxy's own routes beside the OCI Distribution API (/v2/…, whose answers are the
 * upstream's bytes and are described by the OCI specification, not here).
 */

/** `{errors: [{code, message}]}`, the OCI form, for every refusal of the proxy. */
export const ociErrors = z.object({ errors: z.array(z.object({ code: z.string(), message: z.string(), detail: z.unknown().optional() })) });

export const upstreamList = z.object({ upstreams: z.array(z.object({ alias: z.string(), url: z.string(), host: z.string() })) });

export const warmBody = z.object({
  images: z.array(z.string().meta({ description: 'ALIAS/REPO:TAG or ALIAS/REPO@sha256:…' })).min(1),
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

export const registryProxyApi: Api = {
  title: 'Berth registry proxy',
  version: '1',
  error: ociErrors,
  routes: Object.values(proxyRoutes),
};
