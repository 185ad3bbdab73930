import { createHash, randomBytes } from 'node:crypto';
import { eq } from 'drizzle-orm';
import { createMiddleware } from 'hono/factory';
import type { Db } from '../db/open.js';
import { operatorTokens } from '../db/schema.js';
import { bearerOf, HttpError, type AppEnv, type OperatorActor, type Role } from '../http.js';

const RANK: Record<Role, number> = { viewer: 1, 'release-manager': 2, admin: 3 };

/** admin ⊃ release-manager ⊃ viewer. */
export function roleAllows(have: Role, need: Role): boolean {
  return RANK[have] >= RANK[need];
}

export function newOperatorToken(): string {
  return 'berth_' + randomBytes(32).toString('base64url');
}

/** Operator tokens are 256-bit random, so an unsalted sha256 is as good as a slow hash here. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** Looks up an operator token; undefined when unknown, revoked or expired. */
export async function operatorFromToken(db: Db, token: string, now: Date): Promise<OperatorActor | undefined> {
  if (!token.startsWith('berth_')) return undefined;
  const rows = await db.select().from(operatorTokens).where(eq(operatorTokens.tokenHash, hashToken(token))).limit(1);
  const row = rows[0];
  if (!row || row.revokedAt !== null) return undefined;
  if (row.expiresAt !== null && row.expiresAt <= now.getTime()) return undefined;
  return { kind: 'operator', id: row.id, role: row.role };
}

/** Hono middleware: a valid operator token with at least `role`; sets `c.var.actor` (the app sets `c.var.ctx`). */
export function requireRole(role: Role) {
  return createMiddleware<AppEnv>(async (c, next) => {
    const ctx = c.var.ctx;
    const token = bearerOf(c.req.header('authorization'));
    if (!token) throw new HttpError(401, 'unauthenticated', 'an operator token is required (Authorization: Bearer …)');
    const actor = await operatorFromToken(ctx.db, token, ctx.now());
    if (!actor) throw new HttpError(401, 'invalid-token', 'operator token is unknown, expired or revoked');
    if (!roleAllows(actor.role, role)) throw new HttpError(403, 'forbidden', `this needs the ${role} role; the token has ${actor.role}`);
    c.set('actor', actor);
    await next();
  });
}
