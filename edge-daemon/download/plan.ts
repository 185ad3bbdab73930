/**
 * Pure decisions of the download channel: which layers travel, how much disk that needs, how this
 * device names its images in the engine. No I/O here, so each rule is unit-tested on its own.
 */

export interface LayerDecision {
  digest: string;
  size: number;
  diffId: string;
  /** The engine already holds this layer as part of the same chain: it never needs our copy. */
  inEngine: boolean;
  /** Our store already holds the verified blob. */
  inStore: boolean;
}

/**
 * How many leading layers of an image the engine already has. Docker reuses a layer only as part
 * of a chain (its ChainID covers every layer below it), so layer i counts as present when some
 * engine image's `RootFS.Layers` starts with `diffIds[0..i]`; the same diff_id higher up in
 * another image's stack does not count.
 */
export function enginePrefix(diffIds: string[], engineChains: string[][]): number {
  let best = 0;
  for (const chain of engineChains) {
    let n = 0;
    while (n < diffIds.length && n < chain.length && chain[n] === diffIds[n]) n++;
    if (n > best) best = n;
  }
  return best;
}

export function decideLayers(
  layers: { digest: string; size: number }[],
  diffIds: string[],
  engineChains: string[][],
  inStore: (digest: string) => boolean,
): LayerDecision[] {
  if (diffIds.length !== layers.length) {
    throw new Error(`config lists ${diffIds.length} rootfs.diff_ids for ${layers.length} layers`);
  }
  const prefix = enginePrefix(diffIds, engineChains);
  return layers.map((l, i) => ({ ...l, diffId: diffIds[i], inEngine: i < prefix, inStore: inStore(l.digest) }));
}

/** The layers that must travel: neither the engine (in chain) nor our store has them. */
export function layersToFetch(decisions: LayerDecision[]): LayerDecision[] {
  return decisions.filter((d) => !d.inEngine && !d.inStore);
}

export interface DiskCheck {
  where: string;
  path: string;
  needed: number;
}

/**
 * What each filesystem must hold before a download starts. Our store keeps the compressed blobs;
 * the engine then writes its own copy when it pulls from us (a temporary compressed file, then the
 * unpacked layer, which is at least as large as the compressed one). So the state dir's filesystem
 * needs the missing bytes once, the engine's data root once more, and when both are the same
 * filesystem it needs them twice; every filesystem keeps the margin free on top. With deltas the
 * two differ (`engineBytes`): the state dir holds deltas, rebuilt tars and base copies, the engine
 * the rebuilt tars.
 */
export function diskChecks(opts: {
  missingBytes: number;
  /** What the engine writes, when it is not `missingBytes`. */
  engineBytes?: number;
  marginBytes: number;
  stateDir: { path: string; dev: number };
  engineRoot?: { path: string; dev: number };
}): DiskCheck[] {
  const { missingBytes: m, marginBytes: margin, stateDir, engineRoot } = opts;
  const e = opts.engineBytes ?? m;
  if (!engineRoot) return [{ where: `state dir ${stateDir.path}`, path: stateDir.path, needed: m + margin }];
  if (engineRoot.dev === stateDir.dev) {
    return [{ where: `state dir ${stateDir.path} (same filesystem as the engine's ${engineRoot.path})`, path: stateDir.path, needed: m + e + margin }];
  }
  return [
    { where: `state dir ${stateDir.path}`, path: stateDir.path, needed: m + margin },
    { where: `engine data root ${engineRoot.path}`, path: engineRoot.path, needed: e + margin },
  ];
}

/** A device id as one lowercase repository path component (Docker's reference grammar). */
export function deviceComponent(deviceId: string): string {
  const c = deviceId.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
  if (!c) throw new Error(`device id ${JSON.stringify(deviceId)} has no character usable in an image name`);
  return c;
}

export const LOCAL_TAG_REGISTRY = 'berth.local';

/**
 * This device's own name for a pinned image in the engine. Several daemons may share one engine:
 * each holds its own tag, so removing one device's tag never takes an image from another. The
 * repository is the pinned ref's (not the service's), so two services on one image share a tag.
 */
export function localTag(deviceId: string, repository: string, manifestDigest: string): { repo: string; tag: string; ref: string } {
  const repo = `${LOCAL_TAG_REGISTRY}/${deviceComponent(deviceId)}/${repository}`;
  const tag = `sha256-${manifestDigest.slice('sha256:'.length, 'sha256:'.length + 16)}`;
  return { repo, tag, ref: `${repo}:${tag}` };
}

/** Tags in the engine that belong to this device but to no kept image: what prune untags. */
export function tagsToRemove(engineTags: string[], deviceId: string, keptRefs: string[]): string[] {
  const prefix = `${LOCAL_TAG_REGISTRY}/${deviceComponent(deviceId)}/`;
  const keep = new Set(keptRefs);
  return engineTags.filter((t) => t.startsWith(prefix) && !keep.has(t));
}
