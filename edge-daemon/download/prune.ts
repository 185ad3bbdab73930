import type { EngineClient } from '../engine/client.js';
import type { Logger } from '../gateway-log.js';
import { parseManifestBytes } from '../../common/oci.js';
import { parseImageRef } from '../../manifests/image-ref.js';
import { engineRepoDigests, engineTags, removeReference } from './engine.js';
import { deviceComponent, localTag, tagsToRemove } from './plan.js';
import type { DownloadStore } from './store.js';

/**
 * After a commit: drops the blobs (and partial files) no kept image references, what the delta
 * path left in the work dir (layers rebuilt from deltas are not kept: the engine holds them, and a
 * later delta takes its base out of `docker save`), this device's tags of other images and the
 * loopback references a crash left. Never while `ensureImages` runs on the same store.
 */
export async function pruneStore(store: DownloadStore, docker: EngineClient, deviceId: string, keep: string[], log: Logger): Promise<void> {
  await store.init();
  const referenced = new Set<string>();
  const keepTags: string[] = [];
  const visit = async (digest: string): Promise<void> => {
    referenced.add(digest);
    const bytes = await store.read(digest);
    if (!bytes) return;
    const m = parseManifestBytes(bytes);
    if (m.kind === 'index') {
      for (const child of m.manifests) await visit(child.digest);
    } else {
      referenced.add(m.config.digest);
      for (const l of m.layers) referenced.add(l.digest);
    }
  };
  for (const ref of keep) {
    const r = parseImageRef(ref);
    if (!r.digest) throw new Error(`prune: image ${ref} is not pinned by digest`);
    await visit(r.digest);
    keepTags.push(localTag(deviceId, r.repository, r.digest).ref);
  }
  let removed = 0;
  for (const d of await store.list()) {
    if (!referenced.has(d)) {
      await store.remove(d);
      removed++;
    }
  }
  for (const d of await store.listPartials()) if (!referenced.has(d)) await store.discardPartial(d);
  await store.clearWork();
  const untag = tagsToRemove(await engineTags(docker), deviceId, keepTags);
  // Handover references left by a crash between pull and untag.
  const loopback = new RegExp(`^127\\.0\\.0\\.1:\\d+/${deviceComponent(deviceId)}/`);
  const stale = (await engineRepoDigests(docker)).filter((r) => loopback.test(r));
  for (const ref of [...untag, ...stale]) await removeReference(docker, ref, log);
  log.info({ blobsRemoved: removed, tagsRemoved: untag.length }, 'pruned');
}
