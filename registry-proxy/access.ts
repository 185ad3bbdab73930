import type { ParsedManifest } from '../common/oci.js';
import type { PullAccess } from '../protocol/tokens.js';
import { OciError } from './errors.js';

/** Who is asking: nobody checks (anonymous mirror) or the holder of a verified pull token. */
export type Grant = { kind: 'anonymous' } | { kind: 'token'; subject: string; access: PullAccess };

export type Want =
  | { kind: 'manifest'; name: string; reference: string; byDigest: boolean }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'tags'; name: string };

/** What a digest-limited token reaches: its manifests, their children, and their blobs. */
export interface Reach {
  manifests: Set<string>;
  blobs: Set<string>;
}

export type LoadManifest = (name: string, digest: string) => Promise<ParsedManifest>;

/**
 * The repository scope of a token for one repository: 'all' (no digest list: operators),
 * a list of manifest digests (devices), or null (not allowed at all).
 */
export function scopeFor(access: PullAccess, name: string): 'all' | string[] | null {
  const entries = access.filter((e) => e.type === 'repository' && e.name === name && (e.actions.includes('pull') || e.actions.includes('*')));
  if (entries.length === 0) return null;
  if (entries.some((e) => e.digests === undefined)) return 'all';
  return [...new Set(entries.flatMap((e) => e.digests ?? []))].sort();
}

/** Expands manifest digests to everything they reference (index → children → config and layers). */
export async function reachOf(name: string, digests: string[], load: LoadManifest): Promise<Reach> {
  const reach: Reach = { manifests: new Set(), blobs: new Set() };
  const visit = async (digest: string, depth: number): Promise<void> => {
    if (reach.manifests.has(digest) || depth > 2) return;
    reach.manifests.add(digest);
    const m = await load(name, digest);
    if (m.kind === 'index') {
      for (const child of m.manifests) await visit(child.digest, depth + 1);
    } else {
      reach.blobs.add(m.config.digest);
      for (const l of m.layers) reach.blobs.add(l.digest);
    }
  };
  for (const d of digests) await visit(d, 0);
  return reach;
}

/**
 * Decides whether a grant covers a request. Throws DENIED naming what was refused. `reach`
 * computes (and may cache) the expansion of a digest list; it is only called for device tokens.
 */
export async function authorize(grant: Grant, want: Want, reach: (name: string, digests: string[]) => Promise<Reach>): Promise<void> {
  if (grant.kind === 'anonymous') return;
  const scope = scopeFor(grant.access, want.name);
  if (scope === null) throw new OciError('DENIED', `token of ${grant.subject} does not allow pulling ${want.name}`);
  if (scope === 'all') return;
  if (want.kind === 'tags') throw new OciError('DENIED', `token of ${grant.subject} is limited to digests of ${want.name}; listing tags is not allowed`);
  if (want.kind === 'manifest' && !want.byDigest) {
    throw new OciError('DENIED', `token of ${grant.subject} is limited to digests of ${want.name}; pull by digest, not by tag ${want.reference}`);
  }
  if (want.kind === 'manifest' && scope.includes(want.reference)) return;
  const r = await reach(want.name, scope);
  if (want.kind === 'manifest' && r.manifests.has(want.reference)) return;
  if (want.kind === 'blob' && r.blobs.has(want.digest)) return;
  const what = want.kind === 'blob' ? `blob ${want.digest}` : `manifest ${want.reference}`;
  throw new OciError('DENIED', `token of ${grant.subject} does not allow ${what} of ${want.name}: it is outside the desired state`);
}
