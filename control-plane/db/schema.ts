import { sql } from 'drizzle-orm';
import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';

/**
 * The control plane's tables: THE declaration of the schema. Times are milliseconds since the
 * epoch (integers compare and index cheaply); JSON values are text. The ordered migrations in
 * migrations/ build exactly this (test/integration/control-plane-schema.test.ts compares a migrated
 * database with these declarations: tables, columns, keys, indexes, foreign keys, enum checks).
 * A column with `enum` is a CHECK (col IN (...)) in the SQL.
 */

/** What drizzle cannot declare; the schema test checks these too. */
export const sqlOnly = {
  /** Tables created WITHOUT ROWID (a composite primary key is the row's only identity). */
  withoutRowid: ['campaign_devices', 'variables', 'device_sightings', 'device_presence'],
  /** audit_log is append-only: UPDATE and DELETE abort. */
  triggers: ['audit_log_no_delete', 'audit_log_no_update'],
};

export const deviceStatuses = ['registered', 'enrolled', 'revoked'] as const;
export type DeviceStatus = (typeof deviceStatuses)[number];

export const devices = sqliteTable(
  'devices',
  {
    id: text('id').primaryKey(),
    serial: text('serial').notNull(),
    publicKey: text('public_key').notNull(),
    /** JSON object of string → string. */
    labels: text('labels').notNull().default('{}'),
    status: text('status', { enum: deviceStatuses }).notNull().default('registered'),
    createdAt: integer('created_at').notNull(),
    enrolledAt: integer('enrolled_at'),
    /** Bumped to invalidate every device token issued before (revocation). */
    tokenEpoch: integer('token_epoch').notNull().default(0),
    /** The device's X25519 public key (base64url raw) that its secrets are encrypted to; proven with its signing key at enrollment or renewal. */
    encryptionKey: text('encryption_key'),
    /** When the challenge this device last enrolled (or renewed) with was issued: a challenge must be newer (single use, device-api/enroll-challenge.ts). */
    enrollChallengeAt: integer('enroll_challenge_at'),
  },
  (t) => [uniqueIndex('devices_serial').on(t.serial)],
);

export const manifests = sqliteTable(
  'manifests',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    version: text('version').notNull(),
    /** Canonical digest of the pinned manifest: the identity of its content. */
    digest: text('digest').notNull(),
    /** The pinned, normalized Manifest as JSON. */
    spec: text('spec').notNull(),
    source: text('source').notNull(),
    publishedAt: integer('published_at').notNull(),
    publishedBy: text('published_by').notNull(),
  },
  (t) => [uniqueIndex('manifests_name_version').on(t.name, t.version)],
);

export const desired = sqliteTable(
  'desired',
  {
    deviceId: text('device_id').primaryKey().references(() => devices.id),
    manifestId: text('manifest_id').notNull().references(() => manifests.id),
    /** Only goes up: the row is never deleted, every assignment is the previous sequence + 1. */
    sequence: integer('sequence').notNull(),
    campaignId: text('campaign_id'),
    previousManifestId: text('previous_manifest_id').references(() => manifests.id),
    issuedAt: integer('issued_at').notNull(),
    /** JSON DeviceConfig (devices/device-config.ts): what was resolved for this device at assignment (variables, secrets). */
    config: text('config'),
    /** The config that went with previous_manifest_id; a rollback swaps the two. */
    previousConfig: text('previous_config'),
  },
  (t) => [index('desired_manifest').on(t.manifestId), index('desired_campaign').on(t.campaignId), index('desired_issued_at').on(t.issuedAt)],
);

export const reported = sqliteTable('reported', {
  deviceId: text('device_id').primaryKey().references(() => devices.id),
  sequence: integer('sequence').notNull(),
  desiredSequence: integer('desired_sequence'),
  running: text('running'),
  phase: text('phase').notNull(),
  bytesDone: real('bytes_done').notNull(),
  bytesTotal: real('bytes_total').notNull(),
  /** What the update's missing layers weigh in full (0105); null when the device did not say. */
  bytesFull: real('bytes_full'),
  /** 1 when layer deltas carried part of the update, 0 when not, null when the device did not say. */
  bytesDelta: integer('bytes_delta'),
  /** JSON record of service name → ServiceReport. */
  services: text('services').notNull(),
  error: text('error'),
  /** The device's own clock (ISO), as reported. */
  at: text('at').notNull(),
  receivedAt: integer('received_at').notNull(),
});

export const reportHistory = sqliteTable(
  'report_history',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    deviceId: text('device_id').notNull().references(() => devices.id),
    sequence: integer('sequence').notNull(),
    desiredSequence: integer('desired_sequence'),
    running: text('running'),
    phase: text('phase').notNull(),
    error: text('error'),
    /** The whole report as JSON. */
    report: text('report').notNull(),
    receivedAt: integer('received_at').notNull(),
  },
  (t) => [index('report_history_device').on(t.deviceId, t.id)],
);

export const roles = ['admin', 'release-manager', 'viewer'] as const;
export type Role = (typeof roles)[number];

export const operatorTokens = sqliteTable(
  'operator_tokens',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    role: text('role', { enum: roles }).notNull(),
    /** sha256 of the token: tokens are 256-bit random, so a fast hash is enough. */
    tokenHash: text('token_hash').notNull(),
    createdAt: integer('created_at').notNull(),
    createdBy: text('created_by').notNull(),
    expiresAt: integer('expires_at'),
    revokedAt: integer('revoked_at'),
  },
  (t) => [uniqueIndex('operator_tokens_hash').on(t.tokenHash)],
);

export const auditLog = sqliteTable(
  'audit_log',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    at: integer('at').notNull(),
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    target: text('target').notNull(),
    before: text('before'),
    after: text('after'),
  },
  (t) => [index('audit_log_at').on(t.at)],
);

export const signingKeys = sqliteTable('signing_keys', {
  kid: text('kid').primaryKey(),
  /** PKCS#8 PEM sealed with the key secret (secrets/key-vault.ts): never plain text in the database. */
  privateKey: text('private_key').notNull(),
  /** Public JWK as JSON. */
  publicJwk: text('public_jwk').notNull(),
  createdAt: integer('created_at').notNull(),
  /** Set when a newer key took over; the key stays in the JWKS until what it signed has expired. */
  retiredAt: integer('retired_at'),
  /** Set by `POST /v1/keys/:kid/revoke`: out of the JWKS and refused at once (a leaked key). */
  revokedAt: integer('revoked_at'),
});

export const campaignStatuses = ['draft', 'running', 'paused', 'completed', 'failed', 'aborted'] as const;

/** A rollout; its spec (waves, rules, window) is JSON, its progress columns change as it runs. */
export const campaigns = sqliteTable(
  'campaigns',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    manifestId: text('manifest_id').notNull().references(() => manifests.id),
    /** name@version of the manifest. */
    release: text('release').notNull(),
    selector: text('selector').notNull(),
    spec: text('spec').notNull(),
    status: text('status', { enum: campaignStatuses }).notNull(),
    currentWave: integer('current_wave').notNull().default(0),
    soakUntil: integer('soak_until'),
    failuresAcknowledgedAt: integer('failures_acknowledged_at'),
    nextWindowAt: integer('next_window_at'),
    statusReason: text('status_reason'),
    createdAt: integer('created_at').notNull(),
    createdBy: text('created_by').notNull(),
    startedAt: integer('started_at'),
    finishedAt: integer('finished_at'),
    updatedAt: integer('updated_at').notNull(),
    /** Wave assignments made (0116): what the reconcile and the byte totals watch for new members. */
    assignments: integer('assignments').notNull().default(0),
  },
  (t) => [index('campaigns_status').on(t.status), index('campaigns_created').on(t.createdAt)],
);

export const campaignDeviceStates = ['pending', 'assigned', 'succeeded', 'failed', 'rolled-back', 'left'] as const;

/**
 * A device's membership of a campaign. `active` is 1 while a draft, running or paused campaign
 * holds the device; the partial unique index makes "a device belongs to at most one active
 * campaign" a property of the database, not only of the code that checks it.
 */
export const campaignDevices = sqliteTable(
  'campaign_devices',
  {
    campaignId: text('campaign_id').notNull().references(() => campaigns.id),
    deviceId: text('device_id').notNull().references(() => devices.id),
    wave: integer('wave'),
    state: text('state', { enum: campaignDeviceStates }).notNull(),
    active: integer('active').notNull().default(0),
    /** Joined after the campaign started (relabelled, enrolled late): goes after the others. */
    late: integer('late').notNull().default(0),
    joinedAt: integer('joined_at').notNull(),
    previousManifestId: text('previous_manifest_id'),
    desiredSequence: integer('desired_sequence'),
    assignedAt: integer('assigned_at'),
    finishedAt: integer('finished_at'),
    lastError: text('last_error'),
    /** Marks the batch a wave assignment is updating, inside its transaction. */
    assigning: integer('assigning').notNull().default(0),
  },
  (t) => [
    primaryKey({ columns: [t.campaignId, t.deviceId] }),
    uniqueIndex('campaign_devices_one_active').on(t.deviceId).where(sql`active = 1`),
    index('campaign_devices_device').on(t.deviceId),
    index('campaign_devices_progress').on(t.campaignId, t.state, t.wave, t.assignedAt),
    index('campaign_devices_assigning').on(t.campaignId).where(sql`assigning = 1`),
  ],
);

/**
 * A privilege policy: what manifests may ask for on the devices its selector picks (issue 12).
 * `allow` is JSON of manifests/privileges.ts's Allowance; a device's grant is the union of the
 * policies that match it.
 */
export const policies = sqliteTable('policies', {
  name: text('name').primaryKey(),
  selector: text('selector').notNull(),
  allow: text('allow').notNull(),
  createdAt: integer('created_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
  updatedBy: text('updated_by').notNull(),
});

/**
 * A webhook (issue 15): events whose type matches one of `events` (JSON array of patterns) are
 * POSTed to `url`. `secret` is sealed with the key secret (secrets/key-vault.ts, the id as
 * associated data), so the database alone cannot forge a signature.
 */
export const webhooks = sqliteTable('webhooks', {
  id: text('id').primaryKey(),
  url: text('url').notNull(),
  events: text('events').notNull(),
  secret: text('secret').notNull(),
  description: text('description'),
  createdAt: integer('created_at').notNull(),
  createdBy: text('created_by').notNull(),
});

/** The outbox: an event, written in the transaction of the change it reports (only when a webhook wants it). */
export const webhookEvents = sqliteTable(
  'webhook_events',
  {
    seq: integer('seq').primaryKey({ autoIncrement: true }),
    /** `evt_<uuid>`: the CloudEvents id, the same on every redelivery. */
    id: text('id').notNull(),
    type: text('type').notNull(),
    subject: text('subject').notNull(),
    at: integer('at').notNull(),
    /** JSON object. */
    data: text('data').notNull(),
  },
  (t) => [uniqueIndex('webhook_events_id').on(t.id)],
);

export const webhookDeliveryStates = ['pending', 'delivered', 'failed'] as const;

/** One event for one webhook; delivered in id order per webhook, retried with backoff for a day. */
export const webhookDeliveries = sqliteTable(
  'webhook_deliveries',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    webhookId: text('webhook_id').notNull().references(() => webhooks.id),
    eventSeq: integer('event_seq').notNull().references(() => webhookEvents.seq),
    state: text('state', { enum: webhookDeliveryStates }).notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: integer('next_attempt_at').notNull(),
    lastStatus: integer('last_status'),
    lastError: text('last_error'),
    createdAt: integer('created_at').notNull(),
    deliveredAt: integer('delivered_at'),
  },
  (t) => [
    index('webhook_deliveries_pending').on(t.webhookId, t.id).where(sql`state = 'pending'`),
    index('webhook_deliveries_webhook').on(t.webhookId, t.id),
    index('webhook_deliveries_event').on(t.eventSeq),
  ],
);

/**
 * When each device was last heard from (devices/last-seen.ts), apart from the wide `devices` row:
 * every held long poll renews its device's sighting about once a minute, and at 100,000 devices
 * rewriting scattered `devices` rows for it held the cluster's write turn for seconds (issue 17,
 * SCALING.md). A narrow WITHOUT ROWID row (id and time, ~30 bytes) packs ~130 to a page. No row:
 * never seen.
 */
export const deviceSightings = sqliteTable('device_sightings', {
  deviceId: text('device_id').primaryKey().references(() => devices.id),
  lastSeenAt: integer('last_seen_at').notNull(),
});

/** Whether a device was last counted online, so `device.online` / `device.offline` fire once per change. */
export const devicePresence = sqliteTable('device_presence', {
  deviceId: text('device_id').primaryKey().references(() => devices.id),
  online: integer('online').notNull(),
  changedAt: integer('changed_at').notNull(),
});
export const variableScopes = ['device', 'selector', 'fleet'] as const;
export type VariableScope = (typeof variableScopes)[number];

/**
 * A variable's value for a scope (issue 13). `target`: the device id (device), the normalized
 * selector text (selector), '' (fleet). Precedence device > selector > fleet; two selector values
 * that match one device differently are a conflict, refused at rollout (control-plane/vars).
 */
export const variables = sqliteTable(
  'variables',
  {
    name: text('name').notNull(),
    scope: text('scope', { enum: variableScopes }).notNull(),
    target: text('target').notNull(),
    value: text('value').notNull(),
    updatedAt: integer('updated_at').notNull(),
    updatedBy: text('updated_by').notNull(),
  },
  (t) => [primaryKey({ columns: [t.name, t.scope, t.target] }), index('variables_scope').on(t.scope, t.target)],
);

/**
 * A secret's value for one scope (issue 13): `scope` device (target = device id), selector (target =
 * normalized selector) or fleet (target = ''). `value` is the base64 value sealed with the vault key
 * (AES-256-GCM, associated data `device-secret:<id>:<version>`): the database alone reveals nothing.
 */
export const deviceSecrets = sqliteTable(
  'device_secrets',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    scope: text('scope', { enum: ['device', 'selector', 'fleet'] }).notNull(),
    target: text('target').notNull(),
    version: integer('version').notNull(),
    value: text('value').notNull(),
    createdAt: integer('created_at').notNull(),
    updatedAt: integer('updated_at').notNull(),
    updatedBy: text('updated_by').notNull(),
  },
  (t) => [uniqueIndex('device_secrets_scope').on(t.name, t.scope, t.target)],
);

/**
 * The change feed of desired state (issue 17): a row per device whose desired document changed,
 * written in the change's own transaction. Each control plane tails it (`seq > last`) and wakes
 * the long polls of those devices; rows older than a few minutes are pruned.
 */
export const desiredChanges = sqliteTable('desired_changes', {
  seq: integer('seq').primaryKey({ autoIncrement: true }),
  deviceId: text('device_id').notNull(),
  at: integer('at').notNull(),
});

/** A named lease (control-plane/lease.ts): one holder at a time, valid until `expires_at` unless renewed. */
export const leases = sqliteTable('leases', {
  name: text('name').primaryKey(),
  holder: text('holder').notNull(),
  acquiredAt: integer('acquired_at').notNull(),
  expiresAt: integer('expires_at').notNull(),
});

/**
 * A device removed after its revocation (`berth devices rm`, issue 16): its own rows are deleted;
 * the id stays on the revocation list the registry proxy polls until its last pull token expired.
 */
export const removedDevices = sqliteTable(
  'removed_devices',
  {
    deviceId: text('device_id').primaryKey(),
    serial: text('serial').notNull(),
    removedAt: integer('removed_at').notNull(),
    removedBy: text('removed_by').notNull(),
  },
  (t) => [index('removed_devices_at').on(t.removedAt)],
);
