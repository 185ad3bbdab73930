import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { WebhookEventType } from '../../protocol/webhooks.js';
import type { Tx } from '../context.js';
import { wants } from './events.js';

/**
 * The durable outbox. An event is written in the transaction of the change it reports, one
 * delivery row per webhook that wants it, so a change that committed has its deliveries committed
 * with it and a restart (kill -9 included) loses none; the dispatcher sends them afterwards.
 * Nothing is written when no webhook wants the type (the common case costs one small read).
 */
export async function publishEvent(tx: Tx, now: number, type: WebhookEventType, subject: string, data: Record<string, unknown>, onlyWebhook?: string): Promise<string | null> {
  const hooks = await readWebhooks(tx);
  return publishEventTo(tx, now, type, subject, data, onlyWebhook ? hooks.filter((h) => h.id === onlyWebhook).map((h) => h.id) : webhooksWanting(hooks, type));
}

export interface WebhookTarget {
  id: string;
  events: string;
}

/** The webhooks, for a caller publishing many events in one transaction (one read, not one per event). */
export async function readWebhooks(tx: Tx): Promise<WebhookTarget[]> {
  return tx.all<WebhookTarget>(sql`SELECT id, events FROM webhooks`);
}

export function webhooksWanting(hooks: WebhookTarget[], type: WebhookEventType): string[] {
  return hooks.filter((h) => wants(JSON.parse(h.events) as string[], type)).map((h) => h.id);
}

/** The event and one delivery per webhook of `targets` (ids read in this transaction); nothing when there are none. */
export async function publishEventTo(tx: Tx, now: number, type: WebhookEventType, subject: string, data: Record<string, unknown>, targets: string[]): Promise<string | null> {
  if (!targets.length) return null;
  const id = `evt_${randomUUID()}`;
  const [row] = await tx.all<{ seq: number }>(sql`INSERT INTO webhook_events (id, type, subject, at, data)
    VALUES (${id}, ${type}, ${subject}, ${now}, ${JSON.stringify(data)}) RETURNING seq`);
  for (const hook of targets) {
    await tx.run(sql`INSERT INTO webhook_deliveries (webhook_id, event_seq, state, attempts, next_attempt_at, created_at)
      VALUES (${hook}, ${row.seq}, 'pending', 0, ${now}, ${now})`);
  }
  return id;
}

/** A campaign.* event: every one carries the campaign's id, name and release, then what is particular to it. */
export async function publishCampaignEvent(tx: Tx, now: number, type: Extract<WebhookEventType, `campaign.${string}`>, c: { id: string; name: string; release: string }, extra: Record<string, unknown>): Promise<void> {
  await publishEvent(tx, now, type, `campaigns/${c.id}`, { campaignId: c.id, name: c.name, manifest: c.release, ...extra });
}
