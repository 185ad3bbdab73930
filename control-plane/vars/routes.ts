import { eq } from 'drizzle-orm';
import { Hono } from 'hono';
import { effectiveQuery, removeVariableQuery, setVariablesBody, varsRoutes as varsRouteSpecs } from '../../protocol/vars.js';
import { releaseSpec } from '../policy/service.js';
import { checkVariables } from './check.js';
import type { Reader } from '../campaigns/store.js';
import { actorName, type ControlPlaneContext } from '../context.js';
import { devices, type VariableScope } from '../db/schema.js';
import { HttpError, jsonBody, queryOf, type AppEnv } from '../http.js';
import { requireRole } from '../operators/auth.js';
import { formatSelector, parseSelector, SelectorError } from '../selector.js';
import { effectiveValues } from './resolve.js';
import { deleteValue, loadRows, loadRules, saveValue, serialsById, type VariableRow } from './store.js';

const iso = (ms: number) => new Date(ms).toISOString();

interface Scope {
  scope: VariableScope;
  /** As stored: device id, normalized selector, ''. */
  target: string;
  /** As shown: serial, selector, ''. */
  shown: string;
}

async function deviceOf(db: Reader, serial: string): Promise<{ id: string; serial: string; labels: string }> {
  const [d] = await db.select({ id: devices.id, serial: devices.serial, labels: devices.labels }).from(devices).where(eq(devices.serial, serial));
  if (!d) throw new HttpError(404, 'device-not-found', `no device with serial ${serial}`, 'device');
  return d;
}

/** Exactly one of device, selector, fleet: which rows a set or rm touches. */
async function scopeOf(db: Reader, s: { device?: string; selector?: string; fleet?: true | 'true' }): Promise<Scope> {
  const given = [s.device !== undefined, s.selector !== undefined, s.fleet !== undefined].filter(Boolean).length;
  if (given !== 1) throw new HttpError(400, 'invalid-scope', 'give exactly one scope: device (a serial), selector, or fleet', 'scope');
  if (s.device !== undefined) return { scope: 'device', target: (await deviceOf(db, s.device)).id, shown: s.device };
  if (s.selector !== undefined) {
    try {
      const text = formatSelector(parseSelector(s.selector));
      // The empty selector matches every device: that is the fleet scope, said plainly.
      if (!text) throw new HttpError(400, 'invalid-selector', 'an empty selector matches every device: use the fleet scope', 'selector');
      return { scope: 'selector', target: text, shown: text };
    } catch (err) {
      if (err instanceof SelectorError) throw new HttpError(400, 'invalid-selector', err.message, 'selector');
      throw err;
    }
  }
  return { scope: 'fleet', target: '', shown: '' };
}

async function views(db: Reader, rows: VariableRow[]) {
  const serials = await serialsById(db, rows.filter((r) => r.scope === 'device').map((r) => r.target));
  return rows.map((r) => ({ name: r.name, scope: r.scope, target: r.scope === 'device' ? (serials.get(r.target) ?? r.target) : r.target, value: r.value, updatedAt: iso(r.updatedAt), updatedBy: r.updatedBy }));
}

/**
 * `/v1/vars`: release managers (and admins) set and remove values, audited with the values (they
 * are configuration, not secrets); viewers list them. Nothing here changes a running device: a
 * value reaches a device when a campaign or an assignment resolves its document again.
 */
export function varsRoutes(ctx: ControlPlaneContext) {
  const app = new Hono<AppEnv>();

  app.get('/', requireRole('viewer'), async (c) => {
    const q = queryOf(c, effectiveQuery);
    if (q.device === undefined) return c.json({ variables: await views(ctx.db, await loadRows(ctx.db)) });
    const d = await deviceOf(ctx.db, q.device);
    const dv = effectiveValues(await loadRules(ctx.db), { id: d.id, labels: JSON.parse(d.labels) as Record<string, string> });
    return c.json({ device: d.serial, values: Object.entries(dv.values).map(([name, v]) => ({ name, value: v.value, source: v.source })), conflicts: dv.conflicts });
  });

  app.post('/check', requireRole('viewer'), async (c) => {
    const body = await jsonBody(c, varsRouteSpecs.check.body);
    const spec = await releaseSpec(ctx.db, body.manifest);
    if (!spec) throw new HttpError(404, 'unknown-manifest', `manifest ${body.manifest} is not published`, 'manifest');
    try {
      return c.json(await checkVariables(ctx.db, body.manifest, spec, body.selector));
    } catch (err) {
      if (err instanceof SelectorError) throw new HttpError(400, 'invalid-selector', err.message, 'selector');
      throw err;
    }
  });

  app.put('/', requireRole('release-manager'), async (c) => {
    const body = await jsonBody(c, setVariablesBody);
    const scope = await scopeOf(ctx.db, body);
    const actor = actorName(c.var.actor);
    const saved = await ctx.write(async (tx) => {
      const now = ctx.now().getTime();
      const rows: VariableRow[] = [];
      for (const [name, value] of Object.entries(body.values).sort(([a], [b]) => a.localeCompare(b))) {
        const row: VariableRow = { name, scope: scope.scope, target: scope.target, value, updatedAt: now, updatedBy: actor };
        const before = await saveValue(tx, row);
        await ctx.audit(tx, { actor: c.var.actor, action: before ? 'vars.update' : 'vars.create', target: `${name}@${scope.scope}${scope.shown ? ':' + scope.shown : ''}`, before: before ? { value: before.value } : undefined, after: { value } });
        rows.push(row);
      }
      return rows;
    });
    return c.json({ set: await views(ctx.db, saved) });
  });

  app.delete('/:name', requireRole('release-manager'), async (c) => {
    const name = c.req.param('name');
    const scope = await scopeOf(ctx.db, queryOf(c, removeVariableQuery));
    const gone = await ctx.write(async (tx) => {
      const row = await deleteValue(tx, name, scope.scope, scope.target);
      if (row) await ctx.audit(tx, { actor: c.var.actor, action: 'vars.delete', target: `${name}@${scope.scope}${scope.shown ? ':' + scope.shown : ''}`, before: { value: row.value } });
      return row;
    });
    if (!gone) throw new HttpError(404, 'unknown-variable', `no variable ${name} set for ${scope.scope}${scope.shown ? ' ' + scope.shown : ''}`, 'name');
    return c.json((await views(ctx.db, [gone]))[0]);
  });

  return app;
}
