import { and, desc, eq, lt, sql, type SQL } from 'drizzle-orm';
import { Hono } from 'hono';
import { consoleAuditQuery } from '../../protocol/console.js';
import type { ControlPlaneContext } from '../context.js';
import { auditLog, operatorTokens } from '../db/schema.js';
import { queryOf, type AppEnv } from '../http.js';
import { requireRole } from '../operators/auth.js';
import { auditEntryView } from '../operators/routes.js';
import { ChangeFeed, streamChanges } from './changes.js';

/** A prefix for LIKE, its wildcards taken literally. */
function prefix(s: string): string {
  return s.replace(/[\\%_]/g, (ch) => '\\' + ch) + '%';
}

/** `/v1/console/*`: what only the console needs. */
export function consoleApiRoutes(ctx: ControlPlaneContext, feed: ChangeFeed) {
  const app = new Hono<AppEnv>();

  app.get('/session', requireRole('viewer'), async (c) => {
    const actor = c.var.actor;
    const row = (await ctx.db.select({ name: operatorTokens.name }).from(operatorTokens).where(eq(operatorTokens.id, actor.id)).limit(1))[0];
    return c.json({ tokenId: actor.id, name: row?.name ?? actor.id, role: actor.role }, 200, { 'Cache-Control': 'no-store' });
  });

  app.get('/stream', requireRole('viewer'), (c) => streamChanges(c, feed));

  app.get('/audit', requireRole('admin'), async (c) => {
    const q = queryOf(c, consoleAuditQuery);
    const conds: SQL[] = [];
    if (q.before !== undefined) conds.push(lt(auditLog.id, q.before));
    if (q.actor) conds.push(sql`${auditLog.actor} LIKE ${prefix(q.actor)} ESCAPE '\\'`);
    if (q.action) conds.push(sql`${auditLog.action} LIKE ${prefix(q.action)} ESCAPE '\\'`);
    const rows = await ctx.db.select().from(auditLog).where(conds.length ? and(...conds) : undefined).orderBy(desc(auditLog.id)).limit(q.limit + 1);
    const more = rows.length > q.limit;
    const page = more ? rows.slice(0, q.limit) : rows;
    return c.json({
      entries: page.map(auditEntryView),
      next: more ? page[page.length - 1].id : null,
    });
  });

  return app;
}
