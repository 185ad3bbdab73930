import { eq } from 'drizzle-orm';
import { Hono } from 'hono';
import { MAX_SECRET_BYTES, secretName, secretScopeQuery, secretSetBody } from '../../protocol/secrets.js';
import type { Reader } from '../campaigns/store.js';
import { actorName, type ControlPlaneContext } from '../context.js';
import { devices } from '../db/schema.js';
import { HttpError, jsonBody, queryOf, type AppEnv } from '../http.js';
import { requireRole } from '../operators/auth.js';
import { formatSelector, parseSelector, SelectorError } from '../selector.js';
import { deleteSecret, findSecret, listSecrets, putSecret, serialsOf, type SecretRow } from './store.js';

const iso = (ms: number) => new Date(ms).toISOString();

function nameOf(raw: string): string {
  const r = secretName.safeParse(raw);
  if (!r.success) throw new HttpError(400, 'invalid-name', `secret name ${JSON.stringify(raw)}: ${r.error.issues[0]?.message ?? 'invalid'}`, 'name');
  return r.data;
}

/** The stored form of a scope: device → its id (by serial), selector → normalized text, fleet → ''. */
async function scopeTarget(db: Reader, scope: SecretRow['scope'], target: string | undefined): Promise<string> {
  if (scope === 'fleet') {
    if (target !== undefined) throw new HttpError(400, 'invalid-scope', 'scope fleet takes no target', 'target');
    return '';
  }
  if (target === undefined) throw new HttpError(400, 'invalid-scope', `scope ${scope} needs a target (${scope === 'device' ? 'the device serial' : 'a label selector'})`, 'target');
  if (scope === 'device') {
    const [d] = await db.select({ id: devices.id }).from(devices).where(eq(devices.serial, target));
    if (!d) throw new HttpError(404, 'unknown-device', `no device with serial ${target}`, 'target');
    return d.id;
  }
  try {
    const text = formatSelector(parseSelector(target));
    if (!text) throw new HttpError(400, 'invalid-selector', 'an empty selector matches every device: use scope fleet', 'target');
    return text;
  } catch (err) {
    if (err instanceof SelectorError) throw new HttpError(400, 'invalid-selector', err.message, 'target');
    throw err;
  }
}

function view(r: SecretRow, serials: Map<string, string>) {
  const target = r.scope === 'fleet' ? null : r.scope === 'device' ? (serials.get(r.target) ?? r.target) : r.target;
  return { name: r.name, scope: r.scope, target, version: r.version, updatedAt: iso(r.updatedAt), updatedBy: r.updatedBy };
}

/** Audit entries name the secret, its scope and version: never its value. */
function audited(r: SecretRow, serials: Map<string, string>) {
  const v = view(r, serials);
  return { scope: v.scope, target: v.target, version: v.version };
}

/** `/v1/secrets`: set (or rotate), list, remove. Values go in, never out. */
export function secretRoutes(ctx: ControlPlaneContext) {
  const app = new Hono<AppEnv>();
  app.use('*', requireRole('release-manager'));

  app.get('/', async (c) => {
    const rows = await listSecrets(ctx.db);
    const serials = await serialsOf(ctx.db, rows.filter((r) => r.scope === 'device').map((r) => r.target));
    return c.json({ secrets: rows.map((r) => view(r, serials)) });
  });

  app.put('/:name', async (c) => {
    const name = nameOf(c.req.param('name'));
    const body = await jsonBody(c, secretSetBody);
    const value = Buffer.from(body.value, 'base64');
    if (!value.length) throw new HttpError(400, 'empty-value', `secret ${name}: the value is empty`, 'value');
    if (value.length > MAX_SECRET_BYTES) throw new HttpError(400, 'value-too-large', `secret ${name}: the value is ${value.length} bytes, at most ${MAX_SECRET_BYTES}`, 'value');
    const target = await scopeTarget(ctx.db, body.scope, body.target);
    const saved = await ctx.write(async (tx) => {
      const row = await putSecret(tx, ctx.keys.vault, { name, scope: body.scope, target, value, by: actorName(c.var.actor), now: ctx.now().getTime() });
      const serials = await serialsOf(tx, row.scope === 'device' ? [row.target] : []);
      await ctx.audit(tx, { actor: c.var.actor, action: row.version === 1 ? 'secret.create' : 'secret.rotate', target: name, after: audited(row, serials) });
      return { row, serials };
    });
    value.fill(0);
    return c.json(view(saved.row, saved.serials));
  });

  app.delete('/:name', async (c) => {
    const name = nameOf(c.req.param('name'));
    const q = queryOf(c, secretScopeQuery);
    const target = await scopeTarget(ctx.db, q.scope, q.target);
    const removed = await ctx.write(async (tx) => {
      const row = await findSecret(tx, name, q.scope, target);
      if (!row) return null;
      await deleteSecret(tx, row.id);
      const serials = await serialsOf(tx, row.scope === 'device' ? [row.target] : []);
      await ctx.audit(tx, { actor: c.var.actor, action: 'secret.delete', target: name, before: audited(row, serials) });
      return { row, serials };
    });
    if (!removed) throw new HttpError(404, 'unknown-secret', `no secret ${name} for scope ${q.scope}${q.target ? ` ${q.target}` : ''}`);
    return c.json(view(removed.row, removed.serials));
  });

  return app;
}
