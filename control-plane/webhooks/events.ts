import { createHmac, timingSafeEqual } from 'node:crypto';
import { backoffDelay } from '../../common/backoff.js';
import type { WebhookEvent, WebhookEventType } from '../../protocol/webhooks.js';

/** Pure parts of webhooks: which patterns match a type, the body, its signature, when to retry. */

/** `*`, `campaign.*` or an exact type. */
export function patternMatches(pattern: string, type: string): boolean {
  if (pattern === '*') return true;
  if (pattern.endsWith('.*')) return type.startsWith(pattern.slice(0, -1));
  return pattern === type;
}

export function wants(patterns: readonly string[], type: WebhookEventType): boolean {
  // A webhook.test event goes only where it was asked for (the test route), never to `*`.
  return type !== 'webhook.test' && patterns.some((p) => patternMatches(p, type));
}

export interface StoredEvent {
  id: string;
  type: WebhookEventType;
  subject: string;
  at: number;
  data: Record<string, unknown>;
}

/** The CloudEvents 1.0 structured JSON body, serialized once: the bytes signed are the bytes sent. */
export function eventBody(e: StoredEvent, source: string): string {
  const body: WebhookEvent = { specversion: '1.0', id: e.id, type: e.type, source, subject: e.subject, time: new Date(e.at).toISOString(), datacontenttype: 'application/json', data: e.data };
  return JSON.stringify(body);
}

/** `sha256=<hex HMAC-SHA256(secret, body)>`. */
export function signBody(secret: string, body: string): string {
  return 'sha256=' + createHmac('sha256', secret).update(body, 'utf8').digest('hex');
}

/** For receivers (and tests): constant-time check of a signature header against the body. */
export function verifySignature(secret: string, body: string, header: string | null | undefined): boolean {
  if (!header) return false;
  const want = Buffer.from(signBody(secret, body));
  const got = Buffer.from(header);
  return got.length === want.length && timingSafeEqual(got, want);
}

/** Retries go on for this long after the event, then the delivery is given up (failed). */
export const RETRY_FOR_MS = 24 * 3600_000;
const BACKOFF = { baseMs: 1000, capMs: 15 * 60_000, factor: 2, jitter: 0.2 };

export type AttemptOutcome = { ok: true; status: number } | { ok: false; status: number | null; error: string };

export type DeliveryUpdate =
  | { state: 'delivered'; attempts: number; lastStatus: number; lastError: null; deliveredAt: number }
  | { state: 'pending' | 'failed'; attempts: number; lastStatus: number | null; lastError: string; nextAttemptAt: number };

/**
 * What an attempt does to its delivery: a 2xx delivers it; anything else retries with backoff
 * (1 s doubling up to 15 min) until a day after the event, then gives up so the webhook's later
 * events are not held forever behind one that never goes through.
 */
export function afterAttempt(d: { attempts: number; createdAt: number }, outcome: AttemptOutcome, now: number, random: () => number = Math.random): DeliveryUpdate {
  const attempts = d.attempts + 1;
  if (outcome.ok) return { state: 'delivered', attempts, lastStatus: outcome.status, lastError: null, deliveredAt: now };
  const next = now + backoffDelay(BACKOFF, attempts - 1, random);
  const giveUp = next > d.createdAt + RETRY_FOR_MS;
  return { state: giveUp ? 'failed' : 'pending', attempts, lastStatus: outcome.status, lastError: giveUp ? `gave up after ${attempts} attempts over a day: ${outcome.error}` : outcome.error, nextAttemptAt: next };
}
