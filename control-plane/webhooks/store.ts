import { sql } from 'drizzle-orm';
import type { Reader } from '../campaigns/store.js';
import type { Tx } from '../context.js';
import type { KeyVault } from '../secrets/key-vault.js';

/** The webhooks table and the views of it and its deliveries. */

const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

/** The secret sealed with the key secret, the webhook id as associated data (a sealed secret cannot move to another row). */
export function sealSecret(vault: KeyVault, id: string, secret: string): string {
  return vault.seal(secret, `webhook:${id}`);
}
export function openSecret(vault: KeyVault, id: string, sealed: string): string {
  return vault.unseal(sealed, `webhook:${id}`);
}

export interface NewWebhook {
  id: string;
  url: string;
  events: string[];
  sealedSecret: string;
  description: string | null;
  createdAt: number;
  createdBy: string;
}

export async function insertWebhook(tx: Tx, w: NewWebhook): Promise<void> {
  await tx.run(sql`INSERT INTO webhooks (id, url, events, secret, description, created_at, created_by)
    VALUES (${w.id}, ${w.url}, ${JSON.stringify(w.events)}, ${w.sealedSecret}, ${w.description}, ${w.createdAt}, ${w.createdBy})`);
}

export async function deleteWebhook(tx: Tx, id: string): Promise<void> {
  await tx.run(sql`DELETE FROM webhook_deliveries WHERE webhook_id = ${id}`);
  await tx.run(sql`DELETE FROM webhooks WHERE id = ${id}`);
}

interface Row {
  id: string;
  url: string;
  events: string;
  description: string | null;
  created_at: number;
  created_by: string;
  pending: number | null;
  delivered: number | null;
  failed: number | null;
  last_error: string | null;
}

const VIEW = sql`SELECT w.id, w.url, w.events, w.description, w.created_at, w.created_by,
    (SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.state = 'pending') AS pending,
    (SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.state = 'delivered') AS delivered,
    (SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.state = 'failed') AS failed,
    (SELECT d.last_error FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.state = 'pending' ORDER BY d.id LIMIT 1) AS last_error
  FROM webhooks w`;

function view(r: Row) {
  return {
    id: r.id,
    url: r.url,
    events: JSON.parse(r.events) as string[],
    description: r.description,
    createdAt: iso(r.created_at) as string,
    createdBy: r.created_by,
    pending: Number(r.pending ?? 0),
    delivered: Number(r.delivered ?? 0),
    failed: Number(r.failed ?? 0),
    lastError: r.last_error,
  };
}
export type WebhookView = ReturnType<typeof view>;

export async function listWebhooks(db: Reader): Promise<WebhookView[]> {
  return (await db.all<Row>(sql`${VIEW} ORDER BY w.created_at, w.id`)).map(view);
}

export async function loadWebhook(db: Reader, id: string): Promise<WebhookView | null> {
  const rows = await db.all<Row>(sql`${VIEW} WHERE w.id = ${id}`);
  return rows[0] ? view(rows[0]) : null;
}

export async function deliveries(db: Reader, webhookId: string, limit: number) {
  const rows = await db.all<{ event_id: string; type: string; subject: string; state: 'pending' | 'delivered' | 'failed'; attempts: number; last_status: number | null; last_error: string | null; created_at: number; next_attempt_at: number; delivered_at: number | null }>(sql`
    SELECT e.id AS event_id, e.type, e.subject, d.state, d.attempts, d.last_status, d.last_error, d.created_at, d.next_attempt_at, d.delivered_at
    FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq
    WHERE d.webhook_id = ${webhookId} ORDER BY d.id DESC LIMIT ${limit}`);
  return rows.map((r) => ({
    eventId: r.event_id,
    type: r.type,
    subject: r.subject,
    state: r.state,
    attempts: Number(r.attempts),
    lastStatus: r.last_status === null ? null : Number(r.last_status),
    lastError: r.last_error,
    createdAt: iso(r.created_at) as string,
    nextAttemptAt: r.state === 'pending' ? iso(r.next_attempt_at) : null,
    deliveredAt: iso(r.delivered_at),
  }));
}
