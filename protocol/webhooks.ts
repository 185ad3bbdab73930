import { z } from 'zod';
import { json, route } from './route.js';

/**
 * Webhooks: the control plane POSTs events about campaigns, devices and manifests to URLs an admin
 * registers. Each body is a CloudEvents 1.0 JSON event; `X-Berth-Signature: sha256=<hex HMAC-SHA256
 * of the raw body with the webhook's secret>` proves it came from this control plane.
 */

export const WEBHOOK_EVENT_TYPES = [
  'campaign.created',
  'campaign.started',
  'campaign.wave_started',
  'campaign.paused',
  'campaign.resumed',
  'campaign.completed',
  'campaign.failed',
  'campaign.aborted',
  'device.enrolled',
  'device.offline',
  'device.online',
  'device.failed',
  'device.rolled_back',
  'manifest.published',
  /** Sent only by `POST /v1/webhooks/:id/test`, whatever the webhook subscribes to. */
  'webhook.test',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** `campaign.completed`, `campaign.*` (every campaign event) or `*` (every event). */
export const eventPattern = z
  .string()
  .regex(/^(\*|[a-z]+\.\*|[a-z]+\.[a-z_]+)$/, 'an event type (campaign.completed), a family (campaign.*) or *')
  .refine((p) => p === '*' || WEBHOOK_EVENT_TYPES.some((t) => (p.endsWith('.*') ? t.startsWith(p.slice(0, -1)) : t === p)), 'matches no event type Berth sends');

/** The header carrying the body's HMAC. */
export const SIGNATURE_HEADER = 'x-berth-signature';

/** What a receiver gets (CloudEvents 1.0, structured JSON mode). */
export const webhookEvent = z.object({
  specversion: z.literal('1.0'),
  /** Unique per event; a redelivery carries the same id (receivers dedupe by it). */
  id: z.string(),
  type: z.enum(WEBHOOK_EVENT_TYPES),
  /** The control plane's public URL. */
  source: z.string(),
  /** What the event is about: `campaigns/<id>`, `devices/<serial>`, `manifests/<name>@<version>`. */
  subject: z.string(),
  time: z.string(),
  datacontenttype: z.literal('application/json'),
  data: z.record(z.string(), z.unknown()),
});
export type WebhookEvent = z.infer<typeof webhookEvent>;

export const webhookCreate = z.object({
  url: z.url({ protocol: /^https?$/, error: 'an http:// or https:// URL' }),
  events: z.array(eventPattern).min(1),
  /** At least 16 characters; when left out the control plane makes one and answers it once. */
  secret: z.string().min(16, 'at least 16 characters').max(512).optional(),
  description: z.string().max(200).optional(),
});

export const webhookView = z.object({
  id: z.string(),
  url: z.string(),
  events: z.array(z.string()),
  description: z.string().nullable(),
  createdAt: z.string(),
  createdBy: z.string(),
  /** Deliveries waiting (the head is being retried while `lastError` is set). */
  pending: z.number().int(),
  delivered: z.number().int(),
  /** Given up after retrying for a day. */
  failed: z.number().int(),
  lastError: z.string().nullable(),
});

export const webhookCreated = webhookView.extend({ secret: z.string().nullable().describe('the generated secret, shown once; null when the request gave one') });

export const deliveryView = z.object({
  eventId: z.string(),
  type: z.string(),
  subject: z.string(),
  state: z.enum(['pending', 'delivered', 'failed']),
  attempts: z.number().int(),
  lastStatus: z.number().int().nullable(),
  lastError: z.string().nullable(),
  createdAt: z.string(),
  nextAttemptAt: z.string().nullable(),
  deliveredAt: z.string().nullable(),
});

export const webhookDetail = webhookView.extend({ deliveries: z.array(deliveryView) });
export const webhookList = z.object({ webhooks: z.array(webhookView) });
/** Deliveries in `webhooks show` when the request gives no limit. */
export const DELIVERIES_DEFAULT = 50;
export const deliveriesQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).optional() });

export const webhookRoutes = {
  add: route({
    method: 'post',
    path: '/v1/webhooks',
    summary: 'Register a webhook: events matching its patterns are POSTed to its URL, signed (audited; the secret is never logged)',
    auth: 'admin',
    body: webhookCreate,
    responses: { 201: json(webhookCreated) },
  }),
  list: route({ method: 'get', path: '/v1/webhooks', summary: 'Webhooks and their delivery counts', auth: 'admin', responses: { 200: json(webhookList) } }),
  show: route({ method: 'get', path: '/v1/webhooks/:id', summary: 'One webhook and its latest deliveries, newest first', auth: 'admin', query: deliveriesQuery, responses: { 200: json(webhookDetail) } }),
  remove: route({ method: 'delete', path: '/v1/webhooks/:id', summary: 'Remove a webhook and its pending deliveries (audited)', auth: 'admin', responses: { 200: json(webhookView, 'the webhook removed') } }),
  test: route({
    method: 'post',
    path: '/v1/webhooks/:id/test',
    summary: 'Queue a webhook.test event for this webhook, behind its pending deliveries (audited)',
    auth: 'admin',
    responses: { 202: json(z.object({ eventId: z.string() })) },
  }),
};
