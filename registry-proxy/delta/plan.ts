import type { DeltaPlanResponse, LayerPlan } from '../../common/delta/wire.js';
import type { Logger } from '../../common/log.js';
import type { DeltaCache, LayerRef } from './cache.js';
import type { ImageLayer, ResolvedImage } from './images.js';
import { overlap, type LayerPaths } from './paths.js';

/** Seconds a device waits before asking again while something is computed for its plan. */
export const RETRY_AFTER_S = 2;

export interface Candidate {
  image: ResolvedImage;
  layer: ImageLayer;
}

type BaseChoice = { kind: 'base'; base: Candidate } | { kind: 'pending' } | { kind: 'none'; reason: string };

/** The layer at the same position in a held image of the same repository: most often its old version. */
export function sameSpot(target: ResolvedImage, index: number, have: ResolvedImage[]): Candidate | undefined {
  const image = have.find((h) => h.name === target.name && h.layers[index] !== undefined);
  return image ? { image, layer: image.layers[index] } : undefined;
}

/** Every held layer once (by diff_id), first holder wins. */
export function candidatesOf(have: ResolvedImage[]): Candidate[] {
  const seen = new Map<string, Candidate>();
  for (const image of have) for (const layer of image.layers) if (!seen.has(layer.diffId)) seen.set(layer.diffId, { image, layer });
  return [...seen.values()];
}

/** The candidate sharing the most file paths with the target layer; none when no path is shared. */
export function mostOverlap(target: Set<string>, candidates: { c: Candidate; paths: Set<string> }[]): Candidate | undefined {
  let best: Candidate | undefined;
  let score = 0;
  for (const { c, paths } of candidates) {
    const n = overlap(target, paths);
    if (n > score) {
      best = c;
      score = n;
    }
  }
  return best;
}

export const refOf = (image: ResolvedImage, layer: ImageLayer): LayerRef => ({ name: image.name, digest: layer.digest, size: layer.size, diffId: layer.diffId });

export function deltaUrl(digest: string, target: ResolvedImage, base: ResolvedImage): string {
  return `/berth/v1/deltas/${digest}?target=${encodeURIComponent(target.ref)}&base=${encodeURIComponent(base.ref)}`;
}

/** Per layer of a target image: present, a delta from a held layer, in full, or not yet known. */
export class DeltaPlanner {
  constructor(private readonly cache: DeltaCache, private readonly paths: LayerPaths) {}

  async plan(target: ResolvedImage, have: ResolvedImage[], log: Logger): Promise<DeltaPlanResponse> {
    const held = new Set(have.flatMap((h) => h.layers.map((l) => l.diffId)));
    const layers = await Promise.all(target.layers.map((layer) => this.layer(target, layer, have, held, log)));
    const moving = layers.filter((l) => l.action !== 'present');
    const bytes = {
      full: moving.reduce((n, l) => n + l.size, 0),
      planned: moving.reduce((n, l) => n + (l.action === 'delta' && l.delta ? l.delta.size : l.size), 0),
    };
    const pending = layers.some((l) => l.action === 'pending');
    return { target: target.ref, config: target.config, layers, bytes, ...(pending ? { retryAfter: RETRY_AFTER_S } : {}) };
  }

  private async layer(target: ResolvedImage, layer: ImageLayer, have: ResolvedImage[], held: Set<string>, log: Logger): Promise<LayerPlan> {
    const row: LayerPlan = { index: layer.index, digest: layer.digest, diffId: layer.diffId, size: layer.size, mediaType: layer.mediaType, action: 'full' };
    if (held.has(layer.diffId)) return { ...row, action: 'present' };
    const choice = await this.chooseBase(target, layer, have, log);
    if (choice.kind === 'pending') return { ...row, action: 'pending' };
    if (choice.kind === 'none') return { ...row, reason: choice.reason };
    const { image, layer: old } = choice.base;
    const base = { image: image.ref, index: old.index, digest: old.digest, diffId: old.diffId };
    const outcome = await this.cache.known(old.diffId, layer.diffId);
    if (!outcome) {
      void this.cache.ensure(refOf(image, old), refOf(target, layer), log).catch(() => undefined);
      return { ...row, action: 'pending', base };
    }
    if (outcome.kind === 'failed') return { ...row, base, reason: outcome.reason };
    if (outcome.size * 2 > layer.size) {
      return { ...row, base, reason: `not worth it: the delta is ${outcome.size} bytes, over half of the ${layer.size}-byte layer` };
    }
    return { ...row, action: 'delta', base, delta: { digest: outcome.digest, size: outcome.size, url: deltaUrl(outcome.digest, target, image) } };
  }

  private async chooseBase(target: ResolvedImage, layer: ImageLayer, have: ResolvedImage[], log: Logger): Promise<BaseChoice> {
    const same = sameSpot(target, layer.index, have);
    if (same) return { kind: 'base', base: same };
    const candidates = candidatesOf(have);
    if (candidates.length === 0) return { kind: 'none', reason: 'no base: the device holds no layers' };
    const wanted: { c?: Candidate; ref: LayerRef }[] = [{ ref: refOf(target, layer) }, ...candidates.map((c) => ({ c, ref: refOf(c.image, c.layer) }))];
    const lists = await Promise.all(wanted.map((w) => this.paths.known(w.ref.diffId)));
    const missing = wanted.filter((_, i) => lists[i] === undefined);
    if (missing.length > 0) {
      for (const w of missing) void this.paths.ensure(w.ref, log).catch(() => undefined);
      return { kind: 'pending' };
    }
    const best = mostOverlap(lists[0] as Set<string>, candidates.map((c, i) => ({ c, paths: lists[i + 1] as Set<string> })));
    return best ? { kind: 'base', base: best } : { kind: 'none', reason: 'no base: no layer the device holds shares a file path with this one' };
  }
}
