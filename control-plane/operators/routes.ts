import { randomBytes } from 'node:crypto';
import { and, asc, desc, eq, gte, isNull, lt, type SQL } from 'drizzle-orm';
import { Hono } from 'hono';
import { auditQuery, tokenCreateBody } from '../../protocol/operators.js';
import { hashToken, newOperatorToken, requireRole } from './auth.js';
import type { ControlPlaneContext, Tx } from '../context.js';
import { auditLog, operatorTokens } from '../db/schema.js';
import { HttpError, jsonBody, queryOf, type AppEnv } from '../http.js';

type TokenRow = typeof operatorTokens.$inferSelect;
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** An audit row as the API answers it (also the console's audit page). */
export function auditEntryView(r: typeof auditLog.$inferSelect) {
  return {
    id: r.id,
    at: new Date(r.at).toISOString(),
    actor: r.actor,
    action: r.action,
    target: r.target,
    before: r.before === null ? null : (JSON.parse(r.before) as unknown),
    after: r.after === null ? null : (JSON.parse(r.after) as unknown),
  };
}

function view(r: TokenRow) {
  return { id: r.id, name: r.name, role: r.role, createdAt: iso(r.createdAt) as string, createdBy: r.createdBy, expiresAt: iso(r.expiresAt), revokedAt: iso(r.revokedAt) };
}

/** Inserts an operator token row; returns the clear token (to show once) and the row. */
export async function createOperatorToken(tx: Tx, spec: { name: string; role: TokenRow['role']; createdBy: string; expiresAt: number | null; now: number; token?: string }) {
  const token = spec.token ?? newOperatorToken();
  const row: TokenRow = {
    id: 'tok_' + randomBytes(6).toString('hex'),
    name: spec.name,
    role: spec.role,
    tokenHash: hashToken(token),
    createdAt: spec.now,
    createdBy: spec.createdBy,
    expiresAt: spec.expiresAt,
    revokedAt: null,
  };
  await tx.insert(operatorTokens).values(row);
  return { token, row };
}

export function operatorRoutes(ctx: ControlPlaneContext) {
  const app = new Hono<AppEnv>();

  app.post('/tokens', requireRole('admin'), async (c) => {
    const body = await jsonBody(c, tokenCreateBody);
    const actor = c.var.actor;
    const now = ctx.now().getTime();
    const { token, row } = await ctx.write(async (tx) => {
      const made = await createOperatorToken(tx, { name: body.name, role: body.role, createdBy: `operator:${actor.id}`, expiresAt: body.expiresIn ? now + body.expiresIn * 1000 : null, now });
      await ctx.audit(tx, { actor, action: 'token.create', target: made.row.id, after: view(made.row) });
      return made;
    });
    return c.json({ ...view(row), token }, 201);
  });

  app.get('/tokens', requireRole('admin'), async (c) => {
    const rows = await ctx.db.select().from(operatorTokens).orderBy(operatorTokens.createdAt);
    return c.json({ tokens: rows.map(view) });
  });

  app.delete('/tokens/:id', requireRole('admin'), async (c) => {
    const id = c.req.param('id');
    const actor = c.var.actor;
    const row = await ctx.write(async (tx) => {
      const r = (await tx.select().from(operatorTokens).where(eq(operatorTokens.id, id)).limit(1))[0];
      if (!r) throw new HttpError(404, 'token-not-found', `no operator token ${id}`);
      if (r.revokedAt !== null) return r;
      const revokedAt = ctx.now().getTime();
      await tx.update(operatorTokens).set({ revokedAt }).where(and(eq(operatorTokens.id, id), isNull(operatorTokens.revokedAt)));
      await ctx.audit(tx, { actor, action: 'token.revoke', target: id, before: view(r), after: { revokedAt: iso(revokedAt) } });
      return { ...r, revokedAt };
    });
    return c.json(view(row));
  });

  app.get('/audit', requireRole('admin'), async (c) => {
    const q = queryOf(c, auditQuery);
    const conds: SQL[] = [];
    if (q.since !== undefined) {
      if (/^\d+$/.test(q.since)) conds.push(gte(auditLog.id, Number(q.since) + 1));
      else {
        const t = Date.parse(q.since);
        if (Number.isNaN(t)) throw new HttpError(400, 'invalid-query', 'since: an ISO time or an audit entry id', 'since');
        conds.push(gte(auditLog.at, t));
      }
    }
    if (q.before !== undefined) conds.push(lt(auditLog.id, q.before));
    const newest = q.order === 'newest';
    // One row more than asked tells whether another page exists, without counting the whole log.
    const rows = await ctx.db.select().from(auditLog).where(conds.length ? and(...conds) : undefined).orderBy(newest ? desc(auditLog.id) : asc(auditLog.id)).limit(q.limit + 1);
    const page = rows.slice(0, q.limit);
    return c.json({ entries: page.map(auditEntryView), next: rows.length > q.limit ? page[page.length - 1].id : null });
  });

  app.get('/keys', requireRole('admin'), async (c) => {
    const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
    const keys = await ctx.keys.list(ctx.now().getTime());
    return c.json({ keys: keys.map((k) => ({ ...k, createdAt: iso(k.createdAt)!, retiredAt: iso(k.retiredAt), revokedAt: iso(k.revokedAt), verifiesUntil: iso(k.verifiesUntil) })) });
  });

  app.post('/keys/rotate', requireRole('admin'), async (c) => {
    const actor = c.var.actor;
    const out = await ctx.write(async (tx) => {
      const r = await ctx.keys.rotate(tx, ctx.now().getTime());
      await ctx.audit(tx, { actor, action: 'key.rotate', target: r.kid, before: { active: r.retired }, after: { active: r.kid } });
      return r;
    });
    await ctx.keys.load();
    ctx.events.emit('signing-keys-changed', { kid: out.kid });
    return c.json({ kid: out.kid, retired: out.retired, jwks: ctx.keys.jwks() });
  });

  app.post('/keys/:kid/revoke', requireRole('admin'), async (c) => {
    const kid = c.req.param('kid');
    const actor = c.var.actor;
    const out = await ctx.write(async (tx) => {
      const r = await ctx.keys.revoke(tx, kid, ctx.now().getTime());
      if (!r) throw new HttpError(404, 'key-not-found', `no signing key ${kid}`);
      if (!r.already) await ctx.audit(tx, { actor, action: 'key.revoke', target: kid, after: { revoked: kid, active: r.active } });
      return r;
    });
    await ctx.keys.load();
    // Tokens it signed were verified once and remembered; from now on each is checked again.
    ctx.deviceTokens.clear();
    ctx.events.emit('signing-keys-changed', { kid });
    return c.json({ kid, revoked: true as const, active: out.active, jwks: ctx.keys.jwks() });
  });

  return app;
}

