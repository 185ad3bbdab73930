import { and, desc, eq } from 'drizzle-orm';
import { privilegesOf } from '../../manifests/privileges.js';
import { variableNeeds } from '../../manifests/variables.js';
import { Hono, type Context } from 'hono';
import type { Manifest } from '../../manifests/model.js';
import { diffQuery, manifestListQuery, publishBody } from '../../protocol/manifests.js';
import { requireRole } from '../operators/auth.js';
import type { ControlPlaneContext, Db } from '../context.js';
import { manifests } from '../db/schema.js';
import { HttpError, jsonBody, queryOf, type AppEnv } from '../http.js';
import { diffManifests } from './diff.js';
import { pinSource, publishManifest, type PublishOutcome } from './publish.js';

type Row = typeof manifests.$inferSelect;

function summary(r: Row) {
  return { id: r.id, name: r.name, version: r.version, digest: r.digest, publishedAt: new Date(r.publishedAt).toISOString(), publishedBy: r.publishedBy };
}

function view(r: Row) {
  const spec = JSON.parse(r.spec) as Manifest;
  // Computed from the stored spec on every read: one function, so what is shown is what is checked.
  return { ...summary(r), spec, source: r.source, privileges: privilegesOf(spec), variables: variableNeeds(spec) };
}

export async function findManifest(db: Db, name: string, version: string): Promise<Row | undefined> {
  return (await db.select().from(manifests).where(and(eq(manifests.name, name), eq(manifests.version, version))).limit(1))[0];
}

/** The manifest file of a publish or dry run: JSON {source, filename}, or the YAML itself. */
async function sourceOf(c: Context<AppEnv>): Promise<{ source: string; filename: string }> {
  const type = (c.req.header('content-type') ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'application/json') return jsonBody(c, publishBody);
  if (!['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml', 'text/plain'].includes(type)) {
    throw new HttpError(415, 'unsupported-media-type', 'send the manifest as application/yaml (or text/yaml) or JSON {source, filename}');
  }
  const source = await c.req.text();
  if (!source.trim()) throw new HttpError(400, 'empty-body', 'the manifest file is empty');
  return { source, filename: c.req.query('filename') ?? (type === 'text/plain' ? 'manifest.txt' : 'manifest.yaml') };
}

function refusalOf(out: Extract<PublishOutcome, { kind: 'invalid' | 'unresolved' }>) {
  if (out.kind === 'invalid') {
    return { error: { code: 'invalid-manifest', message: out.errors.map((e) => `${e.file}: ${e.path ? e.path + ': ' : ''}${e.message}`).join('; '), field: out.errors[0]?.path || undefined }, errors: out.errors };
  }
  return { error: { code: 'unresolved-image', message: out.problems.map((p) => p.message).join('; '), field: out.problems[0].service ? `services.${out.problems[0].service}.image` : undefined }, problems: out.problems };
}

export function manifestRoutes(ctx: ControlPlaneContext) {
  const app = new Hono<AppEnv>();

  app.post('/', requireRole('release-manager'), async (c) => {
    const { source, filename } = await sourceOf(c);
    const out = await publishManifest(ctx, c.var.actor, source, filename);
    switch (out.kind) {
      case 'invalid':
      case 'unresolved':
        return c.json(refusalOf(out), 422);
      case 'conflict':
        return c.json({ error: { code: 'manifest-conflict', message: `${out.name}@${out.version} is already published with other content (${out.existingDigest}); publish a new version`, field: 'version' } }, 409);
      case 'created':
        return c.json({ ...view(out.manifest), warnings: out.warnings }, 201);
      case 'unchanged':
        return c.json({ ...view(out.manifest), warnings: out.warnings }, 200);
    }
  });

  // Registered before any /:name route; shares publishing's parse and pin, then only reads.
  app.post('/dry-run', requireRole('release-manager'), async (c) => {
    const { source, filename } = await sourceOf(c);
    const out = await pinSource(ctx, source, filename);
    if (out.kind !== 'pinned') return c.json(refusalOf(out), 422);
    const { pinned, digest } = out;
    const [existing, latest] = await Promise.all([
      findManifest(ctx.db, pinned.name, pinned.version),
      ctx.db.select().from(manifests).where(eq(manifests.name, pinned.name)).orderBy(desc(manifests.publishedAt)).limit(1),
    ]);
    const last = latest[0];
    return c.json({
      name: pinned.name,
      version: pinned.version,
      digest,
      spec: pinned,
      source,
      privileges: privilegesOf(pinned),
      variables: variableNeeds(pinned),
      warnings: out.warnings,
      outcome: !existing ? ('new' as const) : existing.digest === digest ? ('unchanged' as const) : ('conflict' as const),
      publishedDigest: existing?.digest ?? null,
      latest: last ? { release: `${last.name}@${last.version}`, digest: last.digest } : null,
      diff: last ? diffManifests(JSON.parse(last.spec) as Manifest, pinned) : null,
    });
  });

  app.get('/', requireRole('viewer'), async (c) => {
    const q = queryOf(c, manifestListQuery);
    const rows = await ctx.db.select().from(manifests).where(q.name ? eq(manifests.name, q.name) : undefined).orderBy(manifests.name, desc(manifests.publishedAt));
    return c.json({ manifests: rows.map(summary) });
  });

  // Registered before /:name/:version so `diff` is this route, not a version called "diff".
  app.get('/:name/diff', requireRole('viewer'), async (c) => {
    const q = queryOf(c, diffQuery);
    const name = c.req.param('name');
    const [a, b] = await Promise.all([findManifest(ctx.db, name, q.from), findManifest(ctx.db, name, q.to)]);
    if (!a) throw new HttpError(404, 'manifest-not-found', `${name}@${q.from} is not published`, 'from');
    if (!b) throw new HttpError(404, 'manifest-not-found', `${name}@${q.to} is not published`, 'to');
    return c.json(diffManifests(JSON.parse(a.spec) as Manifest, JSON.parse(b.spec) as Manifest));
  });

  app.get('/:name/:version', requireRole('viewer'), async (c) => {
    const row = await findManifest(ctx.db, c.req.param('name'), c.req.param('version'));
    if (!row) throw new HttpError(404, 'manifest-not-found', `${c.req.param('name')}@${c.req.param('version')} is not published`);
    return c.json(view(row));
  });

  return app;
}
