import { sql } from 'drizzle-orm';
import { httpRequest } from '../../common/http-client.js';
import type { WebhookEventType } from '../../protocol/webhooks.js';
import type { ControlPlaneContext } from '../context.js';
import { afterAttempt, eventBody, signBody, type AttemptOutcome } from './events.js';
import { openSecret } from './store.js';

export interface DispatcherOptions {
  /** How often the outbox is looked at (it is also how soon a new event leaves). */
  pollMs?: number;
  /** A receiver that has not answered within this fails the attempt. */
  timeoutMs?: number;
  /** Delivered and given-up deliveries older than this are pruned (with events no delivery needs). */
  keepMs?: number;
}

interface Head {
  id: number;
  webhook_id: string;
  attempts: number;
  next_attempt_at: number;
  created_at: number;
  url: string;
  secret: string;
  event_id: string;
  type: WebhookEventType;
  subject: string;
  at: number;
  data: string;
}

/**
 * Sends the outbox. Per webhook only its oldest pending delivery is tried, one request at a time,
 * so each webhook receives its events in order; webhooks do not wait for each other. An attempt
 * is recorded after the answer: a crash between the two sends the event again after the restart
 * (at-least-once; receivers dedupe by the event id). Among control planes sharing one database only
 * the lease holder runs this (lease.ts), so the order per webhook holds across them too.
 */
export function startWebhookDispatcher(ctx: ControlPlaneContext, opts: DispatcherOptions = {}): { stop(): void } {
  const pollMs = opts.pollMs ?? 500;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const keepMs = opts.keepMs ?? 7 * 24 * 3600_000;
  const inFlight = new Set<string>();
  const stopper = new AbortController();
  let scanning = false;
  let lastPrune = 0;

  async function attempt(head: Head): Promise<void> {
    const source = ctx.config.publicUrl ?? 'berth-control-plane';
    const body = eventBody({ id: head.event_id, type: head.type, subject: head.subject, at: Number(head.at), data: JSON.parse(head.data) as Record<string, unknown> }, source);
    let outcome: AttemptOutcome;
    try {
      const answer = await httpRequest(head.url, {
        method: 'POST',
        body,
        headers: {
          'content-type': 'application/cloudevents+json; charset=utf-8',
          'user-agent': 'berth-control-plane',
          'x-berth-signature': signBody(openSecret(ctx.vault, head.webhook_id, head.secret), body),
          'x-berth-event-id': head.event_id,
          'x-berth-event-type': head.type,
        },
        headersTimeoutMs: timeoutMs,
        idleTimeoutMs: timeoutMs,
        signal: stopper.signal,
      });
      await answer.cancel();
      outcome = answer.ok ? { ok: true, status: answer.status } : { ok: false, status: answer.status, error: `the receiver answered ${answer.status}` };
    } catch (err) {
      if (stopper.signal.aborted) return;
      outcome = { ok: false, status: null, error: (err as Error).message };
    }
    const update = afterAttempt({ attempts: Number(head.attempts), createdAt: Number(head.created_at) }, outcome, ctx.now().getTime());
    if (!outcome.ok) ctx.log.warn({ webhook: head.webhook_id, event: head.event_id, type: head.type, attempts: update.attempts, status: outcome.status, error: outcome.error, state: update.state }, 'webhook delivery failed');
    await ctx.write(async (tx) => {
      // Only while still pending: the webhook may have been removed meanwhile.
      if (update.state === 'delivered') {
        await tx.run(sql`UPDATE webhook_deliveries SET state = 'delivered', attempts = ${update.attempts}, last_status = ${update.lastStatus}, last_error = NULL, delivered_at = ${update.deliveredAt}
          WHERE id = ${head.id} AND state = 'pending'`);
      } else {
        await tx.run(sql`UPDATE webhook_deliveries SET state = ${update.state}, attempts = ${update.attempts}, last_status = ${update.lastStatus}, last_error = ${update.lastError}, next_attempt_at = ${update.nextAttemptAt}
          WHERE id = ${head.id} AND state = 'pending'`);
      }
    });
  }

  async function prune(now: number): Promise<void> {
    await ctx.write(async (tx) => {
      await tx.run(sql`DELETE FROM webhook_deliveries WHERE state <> 'pending' AND created_at < ${now - keepMs}`);
      await tx.run(sql`DELETE FROM webhook_events WHERE at < ${now - keepMs} AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_seq = webhook_events.seq)`);
    });
  }

  async function scan(): Promise<void> {
    const now = ctx.now().getTime();
    const heads = await ctx.db.all<Head>(sql`
      SELECT d.id, d.webhook_id, d.attempts, d.next_attempt_at, d.created_at, w.url, w.secret, e.id AS event_id, e.type, e.subject, e.at, e.data
      FROM (SELECT webhook_id, min(id) AS id FROM webhook_deliveries WHERE state = 'pending' GROUP BY webhook_id) h
      JOIN webhook_deliveries d ON d.id = h.id JOIN webhooks w ON w.id = d.webhook_id JOIN webhook_events e ON e.seq = d.event_seq`);
    for (const head of heads) {
      if (inFlight.has(head.webhook_id) || Number(head.next_attempt_at) > now) continue;
      inFlight.add(head.webhook_id);
      attempt(head)
        .catch((err: unknown) => {
          if (!stopper.signal.aborted) ctx.log.error({ err, webhook: head.webhook_id }, 'webhook delivery bookkeeping failed');
        })
        .finally(() => inFlight.delete(head.webhook_id));
    }
    if (now - lastPrune > 3600_000) {
      lastPrune = now;
      await prune(now);
    }
  }

  const timer = setInterval(() => {
    if (scanning || stopper.signal.aborted) return;
    scanning = true;
    scan()
      .catch((err: unknown) => {
        if (!stopper.signal.aborted) ctx.log.error({ err }, 'webhook outbox scan failed');
      })
      .finally(() => (scanning = false));
  }, pollMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      stopper.abort();
    },
  };
}
