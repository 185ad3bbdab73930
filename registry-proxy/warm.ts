import { isDigest } from '../common/digest.js';
import type { Descriptor } from '../common/oci.js';
import { OciError } from './errors.js';
import { checkName, isValidTag } from './names.js';

/** `ALIAS/REPO:TAG` or `ALIAS/REPO@sha256:…`, the proxy's own form of an image. */
export interface ProxyImage {
  name: string;
  reference: string;
  byDigest: boolean;
}

export function parseProxyImage(image: string): ProxyImage {
  const at = image.indexOf('@');
  if (at >= 0) {
    const digest = image.slice(at + 1);
    if (!isDigest(digest)) throw new OciError('DIGEST_INVALID', `image ${JSON.stringify(image)}: digest must be sha256:<64 hex>`);
    return { name: checkName(image.slice(0, at)), reference: digest, byDigest: true };
  }
  const colon = image.lastIndexOf(':');
  const tag = colon > image.lastIndexOf('/') ? image.slice(colon + 1) : 'latest';
  const name = colon > image.lastIndexOf('/') ? image.slice(0, colon) : image;
  if (!isValidTag(tag)) throw new OciError('MANIFEST_INVALID', `image ${JSON.stringify(image)}: bad tag`, undefined, 400);
  return { name: checkName(name), reference: tag, byDigest: false };
}

/** Which children of an index to warm: all of them, or those of one `os/arch[/variant]`. */
export function selectChildren(children: Descriptor[], platform: string | undefined): Descriptor[] {
  if (!platform || platform === 'all') return children;
  const [os, arch, variant] = platform.split('/');
  return children.filter((c) => (c.platform?.os ?? 'linux') === os && c.platform?.architecture === arch && (!variant || c.platform?.variant === variant));
}

/** Runs `work` over `items` with at most `limit` at a time, in order of start. */
export async function inPool<T, R>(items: T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i]);
    }
  });
  await Promise.all(lanes);
  return out;
}
