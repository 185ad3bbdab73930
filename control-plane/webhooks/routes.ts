import { randomBytes, randomUUID } from 'node:crypto';
import { Hono } from 'hono';
import { DELIVERIES_DEFAULT, deliveriesQuery, webhookCreate } from '../../protocol/webhooks.js';
import { actorName, type ControlPlaneContext } from '../context.js';
import { HttpError, jsonBody, queryOf, type AppEnv } from '../http.js';
import { requireRole } from '../operators/auth.js';
import { publishEvent } from './outbox.js';
import { deleteWebhook, deliveries, insertWebhook, listWebhooks, loadWebhook, sealSecret } from './store.js';

/** `/v1/webhooks`: admin only, every change audited; the secret never reaches the log or the audit. */
export function webhookRoutes(ctx: ControlPlaneContext) {
  const app = new Hono<AppEnv>();
  app.use('*', requireRole('admin'));

  app.get('/', async (c) => c.json({ webhooks: await listWebhooks(ctx.db) }));

  app.post('/', async (c) => {
    const body = await jsonBody(c, webhookCreate);
    const url = new URL(body.url);
    // Credentials in a URL end up in logs and listings; the signature is the authentication.
    if (url.username || url.password) throw new HttpError(400, 'invalid-url', 'the webhook URL must not carry credentials (user:password@); the receiver checks X-Berth-Signature', 'url');
    const id = `whk_${randomUUID()}`;
    const generated = body.secret === undefined ? randomBytes(32).toString('base64url') : null;
    const secret = body.secret ?? (generated as string);
    const events = [...new Set(body.events)];
    await ctx.write(async (tx) => {
      const now = ctx.now().getTime();
      await insertWebhook(tx, { id, url: url.href, events, sealedSecret: sealSecret(ctx.vault, id, secret), description: body.description ?? null, createdAt: now, createdBy: actorName(c.var.actor) });
      await ctx.audit(tx, { actor: c.var.actor, action: 'webhook.create', target: id, after: { url: url.href, events, secret: generated ? 'generated' : 'given' } });
    });
    return c.json({ ...((await loadWebhook(ctx.db, id)) as NonNullable<Awaited<ReturnType<typeof loadWebhook>>>), secret: generated }, 201);
  });

  app.get('/:id', async (c) => {
    const q = queryOf(c, deliveriesQuery);
    const w = await loadWebhook(ctx.db, c.req.param('id'));
    if (!w) throw new HttpError(404, 'unknown-webhook', `no webhook ${c.req.param('id')}`);
    return c.json({ ...w, deliveries: await deliveries(ctx.db, w.id, q.limit ?? DELIVERIES_DEFAULT) });
  });

  app.delete('/:id', async (c) => {
    const id = c.req.param('id');
    const before = await loadWebhook(ctx.db, id);
    if (!before) throw new HttpError(404, 'unknown-webhook', `no webhook ${id}`);
    await ctx.write(async (tx) => {
      await deleteWebhook(tx, id);
      await ctx.audit(tx, { actor: c.var.actor, action: 'webhook.delete', target: id, before: { url: before.url, events: before.events, pending: before.pending } });
    });
    return c.json(before);
  });

  app.post('/:id/test', async (c) => {
    const id = c.req.param('id');
    const eventId = await ctx.write(async (tx) => {
      const w = await loadWebhook(tx, id);
      if (!w) return null;
      const now = ctx.now().getTime();
      const evt = await publishEvent(tx, now, 'webhook.test', `webhooks/${id}`, { webhookId: id, requestedBy: actorName(c.var.actor) }, id);
      await ctx.audit(tx, { actor: c.var.actor, action: 'webhook.test', target: id, after: { eventId: evt } });
      return evt;
    });
    if (!eventId) throw new HttpError(404, 'unknown-webhook', `no webhook ${id}`);
    return c.json({ eventId }, 202);
  });

  return app;
}
