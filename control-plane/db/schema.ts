import { index, integer, real, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';

/**
 * The control plane's tables. Times are milliseconds since the epoch (integers compare and index
 * cheaply); JSON values are text. The SQL lives in migrations/; these declarations must match it.
 */

export type DeviceStatus = 'registered' | 'enrolled' | 'revoked';

export const devices = sqliteTable(
  'devices',
  {
    id: text('id').primaryKey(),
    serial: text('serial').notNull(),
    publicKey: text('public_key').notNull(),
    /** JSON object of string → string. */
    labels: text('labels').notNull().default('{}'),
    status: text('status').$type<DeviceStatus>().notNull().default('registered'),
    createdAt: integer('created_at').notNull(),
    enrolledAt: integer('enrolled_at'),
    lastSeenAt: integer('last_seen_at'),
    /** Bumped to invalidate every device token issued before (revocation). */
    tokenEpoch: integer('token_epoch').notNull().default(0),
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
    deviceId: text('device_id').primaryKey(),
    manifestId: text('manifest_id').notNull(),
    /** Only goes up: the row is never deleted, every assignment is the previous sequence + 1. */
    sequence: integer('sequence').notNull(),
    campaignId: text('campaign_id'),
    previousManifestId: text('previous_manifest_id'),
    issuedAt: integer('issued_at').notNull(),
  },
  (t) => [index('desired_manifest').on(t.manifestId), index('desired_campaign').on(t.campaignId), index('desired_issued_at').on(t.issuedAt)],
);

export const reported = sqliteTable('reported', {
  deviceId: text('device_id').primaryKey(),
  sequence: integer('sequence').notNull(),
  desiredSequence: integer('desired_sequence'),
  running: text('running'),
  phase: text('phase').notNull(),
  bytesDone: real('bytes_done').notNull(),
  bytesTotal: real('bytes_total').notNull(),
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
    deviceId: text('device_id').notNull(),
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

export type Role = 'admin' | 'release-manager' | 'viewer';

export const operatorTokens = sqliteTable(
  'operator_tokens',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    role: text('role').$type<Role>().notNull(),
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
  /** PKCS#8 PEM. The database is as secret as the key it holds. */
  privateKey: text('private_key').notNull(),
  /** Public JWK as JSON. */
  publicJwk: text('public_jwk').notNull(),
  createdAt: integer('created_at').notNull(),
  /** Set when a newer key took over; the key stays in the JWKS until what it signed has expired. */
  retiredAt: integer('retired_at'),
});

export const enrollChallenges = sqliteTable(
  'enroll_challenges',
  {
    challenge: text('challenge').primaryKey(),
    serial: text('serial').notNull(),
    createdAt: integer('created_at').notNull(),
    expiresAt: integer('expires_at').notNull(),
    usedAt: integer('used_at'),
  },
  (t) => [index('enroll_challenges_expires').on(t.expiresAt)],
);
