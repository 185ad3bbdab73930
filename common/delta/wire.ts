import { z } from 'zod';
import { DIGEST_RE } from '../digest.js';

/**
 * The proxy's delta plan (`POST /berth/v1/deltas/plan`), shared by the proxy and the gateway.
 * Images are the proxy's own form: `ALIAS/REPO@sha256:…` (or `ALIAS/REPO:TAG` for tokens that
 * are not limited to digests).
 */
export const DELTA_MEDIA_TYPE = 'application/vnd.berth.layer.delta.v1';

const digest = z.string().regex(DIGEST_RE);

export const deltaPlanRequest = z.object({
  /** The image the device is updating to. */
  target: z.string().min(1),
  /** Images the device holds (of releases it ran): bases for deltas. */
  have: z.array(z.string().min(1)).max(64).default([]),
  /** os/arch[/variant] when `target` is an index. */
  platform: z.string().optional(),
});
export type DeltaPlanRequest = z.infer<typeof deltaPlanRequest>;

export const layerActions = ['present', 'delta', 'full', 'pending'] as const;

export const layerPlan = z.object({
  index: z.number().int().min(0),
  /** The layer blob (compressed) and its diff_id (the uncompressed tar). */
  digest,
  diffId: digest,
  size: z.number().int().min(0),
  mediaType: z.string(),
  /**
   * present: a `have` image holds this diff_id; delta: fetch `delta.url` and apply it to `base`;
   * full: fetch the blob; pending: a delta is being computed, ask again after `retryAfter`.
   */
  action: z.enum(layerActions),
  base: z.object({ image: z.string(), index: z.number().int().min(0), digest, diffId: digest }).optional(),
  delta: z.object({ digest, size: z.number().int().min(0), url: z.string() }).optional(),
  /** Why a layer travels in full (no base, not worth it, could not be computed). */
  reason: z.string().optional(),
});
export type LayerPlan = z.infer<typeof layerPlan>;

export const deltaPlanResponse = z.object({
  /** `ALIAS/REPO@<image manifest digest>` of the target (the platform's manifest for an index). */
  target: z.string(),
  config: digest,
  layers: z.array(layerPlan),
  /** Bytes of the layers that are not present: in full, and as planned (deltas where ready). */
  bytes: z.object({ full: z.number().int().min(0), planned: z.number().int().min(0) }),
  /** Seconds; set (with HTTP 202 and Retry-After) while any layer is pending. */
  retryAfter: z.number().int().min(1).optional(),
});
export type DeltaPlanResponse = z.infer<typeof deltaPlanResponse>;
