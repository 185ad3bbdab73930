import { Hono } from 'hono';
import { formatAllowance, parseAllowance } from '../../manifests/privileges.js';
import { policyBody, policyName, privilegeCheckBody } from '../../protocol/policies.js';
import { actorName, type ControlPlaneContext } from '../context.js';
import { HttpError, jsonBody, type AppEnv } from '../http.js';
import { requireRole } from '../operators/auth.js';
import { formatSelector, parseSelector, SelectorError, type Selector } from '../selector.js';
import { checkRollout, releaseSpec } from './service.js';
import { countMatching, deletePolicy, loadPolicies, loadPolicy, savePolicy, type PolicyRecord } from './store.js';
import type { Reader } from '../campaigns/store.js';

const iso = (ms: number) => new Date(ms).toISOString();

function selectorOf(text: string): Selector {
  try {
    return parseSelector(text);
  } catch (err) {
    if (err instanceof SelectorError) throw new HttpError(400, 'invalid-selector', err.message, 'selector');
    throw err;
  }
}

async function view(db: Reader, p: PolicyRecord) {
  return { name: p.name, selector: p.selector, allow: formatAllowance(p.allow), createdAt: iso(p.createdAt), updatedAt: iso(p.updatedAt), updatedBy: p.updatedBy, devices: await countMatching(db, parseSelector(p.selector)) };
}

function nameOf(raw: string): string {
  const r = policyName.safeParse(raw);
  if (!r.success) throw new HttpError(400, 'invalid-name', `policy name ${JSON.stringify(raw)}: ${r.error.issues[0]?.message ?? 'invalid'}`, 'name');
  return r.data;
}

/** `/v1/policies`: privilege policies, admin-set and audited; the rollout check they feed. */
export function policyRoutes(ctx: ControlPlaneContext) {
  const app = new Hono<AppEnv>();

  app.get('/', requireRole('viewer'), async (c) => c.json({ policies: await Promise.all((await loadPolicies(ctx.db)).map((p) => view(ctx.db, p))) }));

  app.post('/check', requireRole('viewer'), async (c) => {
    const body = await jsonBody(c, privilegeCheckBody);
    selectorOf(body.selector);
    const spec = await releaseSpec(ctx.db, body.manifest);
    if (!spec) throw new HttpError(404, 'unknown-manifest', `manifest ${body.manifest} is not published`, 'manifest');
    return c.json(await checkRollout(ctx.db, body.manifest, spec, body.selector));
  });

  app.get('/:name', requireRole('viewer'), async (c) => {
    const p = await loadPolicy(ctx.db, c.req.param('name'));
    if (!p) throw new HttpError(404, 'unknown-policy', `no policy ${c.req.param('name')}`);
    return c.json(await view(ctx.db, p));
  });

  app.put('/:name', requireRole('admin'), async (c) => {
    const name = nameOf(c.req.param('name'));
    const body = await jsonBody(c, policyBody);
    const selector = formatSelector(selectorOf(body.selector));
    const parsed = parseAllowance(body.allow);
    if ('errors' in parsed) throw new HttpError(400, 'invalid-allow', parsed.errors.join('; '), 'allow');
    const saved = await ctx.write(async (tx) => {
      const before = await loadPolicy(tx, name);
      const now = ctx.now().getTime();
      const record: PolicyRecord = { name, selector, allow: parsed.allow, createdAt: before?.createdAt ?? now, updatedAt: now, updatedBy: actorName(c.var.actor) };
      await savePolicy(tx, record);
      await ctx.audit(tx, { actor: c.var.actor, action: before ? 'policy.update' : 'policy.create', target: name, before: before ? { selector: before.selector, allow: formatAllowance(before.allow) } : undefined, after: { selector, allow: formatAllowance(parsed.allow) } });
      return record;
    });
    return c.json(await view(ctx.db, saved));
  });

  app.delete('/:name', requireRole('admin'), async (c) => {
    const name = c.req.param('name');
    const removed = await ctx.write(async (tx) => {
      const before = await loadPolicy(tx, name);
      if (!before) return null;
      await deletePolicy(tx, name);
      await ctx.audit(tx, { actor: c.var.actor, action: 'policy.delete', target: name, before: { selector: before.selector, allow: formatAllowance(before.allow) } });
      return before;
    });
    if (!removed) throw new HttpError(404, 'unknown-policy', `no policy ${name}`);
    return c.json(await view(ctx.db, removed));
  });

  return app;
}
