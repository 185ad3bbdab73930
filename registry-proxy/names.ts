import { DIGEST_RE } from '../common/digest.js';
import { OciError } from './errors.js';

/** Repository path components, as the OCI distribution spec defines them. */
const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const MAX_NAME = 255;

export type V2Route =
  | { kind: 'base' }
  | { kind: 'manifest'; name: string; reference: string; byDigest: boolean }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'tags'; name: string };

export function isValidAlias(alias: string): boolean {
  return COMPONENT.test(alias);
}

export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

/**
 * Validates a repository name. Every component must match the spec's grammar, which rules out
 * `..`, empty segments and percent-escapes, so a name can never walk out of a cache directory.
 */
export function checkName(name: string): string {
  const parts = name.split('/');
  if (name.length === 0 || name.length > MAX_NAME || parts.some((p) => !COMPONENT.test(p))) {
    throw new OciError('NAME_INVALID', `invalid repository name ${JSON.stringify(name.slice(0, 300))}: components must be lowercase letters, digits and separators`);
  }
  return name;
}

export function checkDigest(digest: string): string {
  if (!DIGEST_RE.test(digest)) {
    throw new OciError('DIGEST_INVALID', `invalid digest ${JSON.stringify(digest.slice(0, 200))}: expected sha256:<64 lowercase hex>`);
  }
  return digest;
}

/**
 * Parses the raw request path of the v2 API (before any normalization, so `/v2/a/../b` is refused
 * rather than silently resolved to another repository). Returns null for paths outside /v2/.
 */
export function parseV2Path(rawPath: string): V2Route | null {
  const path = rawPath.split('?')[0];
  if (path === '/v2' || path === '/v2/') return { kind: 'base' };
  if (!path.startsWith('/v2/')) return null;
  if (/%|\\|\/\/|\/\.\.?(\/|$)/.test(path)) {
    throw new OciError('NAME_INVALID', `invalid request path ${JSON.stringify(path.slice(0, 300))}: escapes, empty or dot segments are not allowed`);
  }
  const rest = path.slice('/v2/'.length);
  if (/^(manifests|blobs|tags)\//.test(rest)) throw new OciError('NAME_INVALID', `request path ${JSON.stringify(path.slice(0, 300))} names no repository`);
  let m = /^(.+)\/manifests\/([^/]+)$/.exec(rest);
  if (m) {
    const name = checkName(m[1]);
    const reference = m[2];
    if (reference.includes(':')) return { kind: 'manifest', name, reference: checkDigest(reference), byDigest: true };
    if (!TAG.test(reference)) throw new OciError('MANIFEST_INVALID', `invalid tag ${JSON.stringify(reference.slice(0, 200))}`, undefined, 400);
    return { kind: 'manifest', name, reference, byDigest: false };
  }
  m = /^(.+)\/blobs\/([^/]+)$/.exec(rest);
  if (m) return { kind: 'blob', name: checkName(m[1]), digest: checkDigest(m[2]) };
  m = /^(.+)\/tags\/list$/.exec(rest);
  if (m) return { kind: 'tags', name: checkName(m[1]) };
  throw new OciError('UNSUPPORTED', `unsupported path ${JSON.stringify(path.slice(0, 300))}: this proxy serves the read API only`, undefined, 404);
}

/** Splits `ALIAS/REPO` into the upstream alias and the repository on that upstream. */
export function splitAlias(name: string): { alias: string; repository: string } {
  const slash = name.indexOf('/');
  if (slash < 0) throw new OciError('NAME_UNKNOWN', `repository ${JSON.stringify(name)} names no upstream: use ALIAS/REPOSITORY`);
  return { alias: name.slice(0, slash), repository: name.slice(slash + 1) };
}
