import { randomBytes } from 'node:crypto';
import { and, eq } from 'drizzle-orm';
import type { Manifest } from '../../manifests/model.js';
import { manifestDigest, parseManifest, pinManifest, type ManifestIssue } from '../../manifests/parse.js';
import type { ControlPlaneContext } from '../context.js';
import { manifests } from '../db/schema.js';
import { publishEvent } from '../webhooks/outbox.js';
import type { OperatorActor } from '../http.js';

export interface ImageProblem {
  service: string;
  image: string;
  reason: string;
  message: string;
}

export type PublishOutcome =
  | { kind: 'invalid'; errors: ManifestIssue[] }
  | { kind: 'unresolved'; problems: ImageProblem[] }
  | { kind: 'conflict'; existingDigest: string; digest: string; name: string; version: string }
  | { kind: 'created' | 'unchanged'; manifest: typeof manifests.$inferSelect; warnings: ManifestIssue[] };

export type Pinned = { kind: 'pinned'; pinned: Manifest; digest: string; warnings: ManifestIssue[] };

/**
 * Parses and validates a manifest file and pins every image to the digest the registry (proxy)
 * serves for it now. Writes nothing: publishing and `apply --dry-run` share it, so a dry run
 * shows exactly what publishing would store.
 */
export async function pinSource(ctx: Pick<ControlPlaneContext, 'registry'>, source: string, filename: string): Promise<Pinned | Extract<PublishOutcome, { kind: 'invalid' | 'unresolved' }>> {
  const parsed = parseManifest(source, filename);
  if (!parsed.ok) return { kind: 'invalid', errors: parsed.errors };
  const m = parsed.manifest;
  const resolved = new Map<string, string>();
  const problems: ImageProblem[] = [];
  // Resolved one after another: a manifest has a handful of services, and the proxy fills its cache.
  for (const [service, s] of Object.entries(m.services)) {
    const r = await ctx.registry.resolve(s.image);
    if (r.ok) resolved.set(service, r.digest);
    else problems.push({ service, image: s.image, reason: r.reason, message: `services.${service}.image: ${r.message}` });
  }
  if (problems.length) return { kind: 'unresolved', problems };
  let pinned: Manifest;
  try {
    pinned = pinManifest(m, (_image, service) => resolved.get(service));
  } catch (err) {
    return { kind: 'unresolved', problems: [{ service: '', image: '', reason: 'refused', message: (err as Error).message }] };
  }
  return { kind: 'pinned', pinned, digest: manifestDigest(pinned), warnings: parsed.warnings };
}

/**
 * Publishes a manifest file: parse and validate it, pin every image to the digest the registry
 * (proxy) serves for it now, and store it immutable as name+version. The same content again is a
 * no-op, other content under a published name+version a conflict.
 */
export async function publishManifest(ctx: Pick<ControlPlaneContext, 'registry' | 'write' | 'audit' | 'now'>, actor: OperatorActor, source: string, filename: string): Promise<PublishOutcome> {
  const out = await pinSource(ctx, source, filename);
  if (out.kind !== 'pinned') return out;
  const { pinned, digest, warnings } = out;
  return ctx.write(async (tx) => {
    const existing = (await tx.select().from(manifests).where(and(eq(manifests.name, pinned.name), eq(manifests.version, pinned.version))).limit(1))[0];
    if (existing) {
      if (existing.digest === digest) return { kind: 'unchanged' as const, manifest: existing, warnings };
      return { kind: 'conflict' as const, existingDigest: existing.digest, digest, name: pinned.name, version: pinned.version };
    }
    const row = {
      id: 'man_' + randomBytes(9).toString('base64url'),
      name: pinned.name,
      version: pinned.version,
      digest,
      spec: JSON.stringify(pinned),
      source,
      publishedAt: ctx.now().getTime(),
      publishedBy: `operator:${actor.id}`,
    };
    await tx.insert(manifests).values(row);
    await ctx.audit(tx, { actor, action: 'manifest.publish', target: `${pinned.name}@${pinned.version}`, after: { digest, images: Object.fromEntries(Object.entries(pinned.services).map(([k, s]) => [k, s.image])) } });
    await publishEvent(tx, row.publishedAt, 'manifest.published', `manifests/${row.name}@${row.version}`, { manifest: `${row.name}@${row.version}`, digest, publishedBy: row.publishedBy });
    return { kind: 'created' as const, manifest: row, warnings };
  });
}
