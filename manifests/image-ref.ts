import { DIGEST_RE } from '../common/digest.js';

/** An image reference as users write it, split Docker's way. */
export interface ImageRef {
  /** Registry host with optional port, `docker.io` for Docker Hub. */
  registry: string;
  /** Repository path on that registry (`library/busybox` for a Docker Hub one-part name). */
  repository: string;
  tag?: string;
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DOCKER_HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

export class ImageRefError extends Error {
  constructor(ref: string, why: string) {
    super(`invalid image reference ${JSON.stringify(ref)}: ${why}`);
    this.name = 'ImageRefError';
  }
}

export function parseImageRef(ref: string): ImageRef {
  let rest = ref.trim();
  if (!rest) throw new ImageRefError(ref, 'empty');
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) throw new ImageRefError(ref, 'digest must be sha256:<64 lowercase hex>');
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw new ImageRefError(ref, `bad tag ${JSON.stringify(tag)}`);
  }
  const parts = rest.split('/');
  let registry = 'docker.io';
  const first = parts[0];
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    registry = first;
    parts.shift();
  }
  if (DOCKER_HUB_HOSTS.has(registry)) {
    registry = 'docker.io';
    if (parts.length === 1) parts.unshift('library');
  }
  if (parts.length === 0 || parts.some((p) => !COMPONENT.test(p))) {
    throw new ImageRefError(ref, 'repository path components must be lowercase letters, digits and separators');
  }
  if (!tag && !digest) tag = 'latest';
  return { registry, repository: parts.join('/'), tag, digest };
}

export function formatImageRef(r: ImageRef): string {
  const base = `${r.registry}/${r.repository}`;
  if (r.digest) return `${base}@${r.digest}`;
  return `${base}:${r.tag ?? 'latest'}`;
}

/** `repo@digest`, dropping the tag: the form every published manifest pins to. */
export function pinImageRef(ref: string, digest: string): string {
  const r = parseImageRef(ref);
  return formatImageRef({ registry: r.registry, repository: r.repository, digest });
}

export interface Upstream {
  alias: string;
  url: string;
}

/** The registry host an upstream URL serves, normalized like references are. */
export function upstreamHost(url: string): string {
  const host = new URL(url).host;
  return DOCKER_HUB_HOSTS.has(host) ? 'docker.io' : host;
}

/**
 * Maps a user's image reference to the registry proxy's repository `ALIAS/REPO`.
 * A reference to a registry the proxy does not mirror is an error naming it.
 */
export function proxyRepository(ref: string | ImageRef, upstreams: Upstream[]): { alias: string; repository: string } {
  const r = typeof ref === 'string' ? parseImageRef(ref) : ref;
  const up = upstreams.find((u) => upstreamHost(u.url) === r.registry);
  if (!up) {
    const known = upstreams.map((u) => `${u.alias}=${upstreamHost(u.url)}`).join(', ') || 'none';
    throw new Error(`registry ${r.registry} is not mirrored by the registry proxy (upstreams: ${known})`);
  }
  return { alias: up.alias, repository: `${up.alias}/${r.repository}` };
}
