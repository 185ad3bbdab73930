import { decodeHeader, type DeltaHeader } from '../../common/delta/format.js';
import type { DeltaPlanResponse, LayerPlan } from '../../common/delta/wire.js';
import { sha256Digest } from '../../common/digest.js';
import { MEDIA } from '../../common/oci.js';

/**
 * Pure decisions of the delta path (issue 11): which missing layer comes as a delta and which in
 * full (and why), what a delta costs on disk, and the manifest the engine pulls once layers were
 * rebuilt. No I/O here; each rule is unit-tested on its own.
 */

/**
 * Layers smaller than this travel in full without asking the proxy for a plan. The delta path
 * costs about 4 KiB of requests before any delta byte (the plan asked at least once, the delta's
 * header, then the delta, each carrying a pull token of about 1 KiB) and at least one round trip,
 * two seconds more when the proxy answers "pending": for a layer this small it cannot save bytes
 * and only delays the update (a config file or a version stamp in its own layer, the common case).
 */
export const DELTA_MIN_LAYER_BYTES = 8 * 1024;

/** Why a layer travels in full although deltas were tried. Reported per layer. */
export type FallbackReason = 'no-base' | 'bad-digest' | 'apply-error' | 'unavailable' | 'full';

/** One layer the engine and the store lack: its position in the image and what the signed config says. */
export interface MissingLayer {
  index: number;
  digest: string;
  diffId: string;
  size: number;
}

export type LayerRoute =
  | { kind: 'delta'; layer: MissingLayer; base: NonNullable<LayerPlan['base']>; delta: NonNullable<LayerPlan['delta']> }
  | { kind: 'full'; layer: MissingLayer; reason: FallbackReason; detail: string };

/**
 * Each missing layer's route from the proxy's plan. The plan is advice: a row that does not name
 * the layer the signed config names (digest and diff_id at that index) is not followed.
 */
export function routeLayers(missing: MissingLayer[], plan: DeltaPlanResponse | { error: string }): LayerRoute[] {
  return missing.map((layer): LayerRoute => {
    if ('error' in plan) return { kind: 'full', layer, reason: 'unavailable', detail: plan.error };
    const row = plan.layers.find((l) => l.index === layer.index);
    if (!row || row.digest !== layer.digest || row.diffId !== layer.diffId) {
      return { kind: 'full', layer, reason: 'unavailable', detail: `the plan does not name layer ${layer.index} (${layer.diffId}) as the signed config does` };
    }
    if (row.action === 'delta' && row.base && row.delta) return { kind: 'delta', layer, base: row.base, delta: row.delta };
    if (row.action === 'pending') return { kind: 'full', layer, reason: 'unavailable', detail: 'the delta was still being computed' };
    // "present" here means a held image has this diff_id, but not in a chain the engine can reuse.
    const detail = row.action === 'present' ? 'held only in another layer chain' : (row.reason ?? 'the proxy answered full');
    return { kind: 'full', layer, reason: row.reason?.startsWith('no base') ? 'no-base' : 'full', detail };
  });
}

/** A delta's header, checked against what the route promised: it must lead from the base to this layer. */
export function checkDeltaHeader(head: Buffer, route: Extract<LayerRoute, { kind: 'delta' }>): DeltaHeader {
  const header = decodeHeader(head);
  if (header.to !== route.layer.diffId) throw new Error(`delta ${route.delta.digest} rebuilds ${header.to}, not layer ${route.layer.diffId}`);
  if (header.from !== route.base.diffId) throw new Error(`delta ${route.delta.digest} starts from ${header.from}, not the planned base ${route.base.diffId}`);
  return header;
}

/**
 * Disk a delta needs on the state dir's filesystem: the delta, the rebuilt tar and, unless the
 * store already holds the base uncompressed, a temporary copy of the base; the engine's data root
 * needs the rebuilt tar (it unpacks what it pulls).
 */
export function deltaDiskBytes(header: DeltaHeader, deltaSize: number, baseInStore: boolean): { state: number; engine: number } {
  return { state: deltaSize + header.toSize + (baseInStore ? 0 : header.fromSize), engine: header.toSize };
}

/** The uncompressed layer media type matching a manifest's family (Docker 20.10 accepts both). */
function tarMediaType(manifestMediaType: string | undefined): string {
  return manifestMediaType === MEDIA.dockerManifest ? 'application/vnd.docker.image.rootfs.diff.tar' : 'application/vnd.oci.image.layer.v1.tar';
}

/**
 * The image manifest with rebuilt layers named by their uncompressed tar (digest = diff_id). The
 * config is untouched, so the image the engine ends up with has the signed config digest as its id.
 */
export function rebuiltManifest(bytes: Buffer, rebuilt: Map<string, { diffId: string; size: number }>): { bytes: Buffer; digest: string } {
  const json = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; layers?: { mediaType: string; digest: string; size: number }[] };
  if (!Array.isArray(json.layers)) throw new Error('manifest has no layers list');
  const type = tarMediaType(json.mediaType);
  json.layers = json.layers.map((l) => {
    const r = rebuilt.get(l.digest);
    return r ? { mediaType: type, digest: r.diffId, size: r.size } : l;
  });
  const out = Buffer.from(JSON.stringify(json));
  return { bytes: out, digest: sha256Digest(out) };
}
