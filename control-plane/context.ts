import type { RemoteBatches } from './cluster-batches.js';
import type { Client } from '@libsql/client';
import type { Logger } from '../common/log.js';
import { sql } from 'drizzle-orm';
import type { Db } from './db/open.js';
import { clientPointReads, type PointReads } from './db/point-reads.js';
import { createWriteQueue, type AfterCommit, type Tx, type Write, type WriteAlone, type WriteTurn } from './db/write-queue.js';
import type { AddressBudget } from './device-api/enroll-guard.js';
import type { TypedEmitter } from './events.js';
import type { SigningKeys } from './signing-keys.js';
import type { DesiredWaiters } from './devices/desired-waiters.js';
import type { ImageRegistry } from './manifests/registry.js';
import type { LastSeen } from './devices/last-seen.js';
import type { DeviceTokenCache } from './device-api/token-cache.js';
import type { KeyVault } from './secrets/key-vault.js';
import { ByteTallies } from './campaigns/byte-tallies.js';

export type { Db, Tx };

export interface ControlPlaneConfig {
  /** How devices and clients reach this control plane (used in logs and the OpenAPI servers list). */
  publicUrl: string | null;
  /** Registry proxy base URL handed to devices and used to resolve tags; null: none configured. */
  registryProxy: string | null;
  dataDir: string;
  /** A device not heard from for this long is shown offline. */
  offlineAfterMs: number;
  documentTtlSec: number;
  deviceTokenTtlSec: number;
  pullTokenTtlSec: number;
  operatorPullTokenTtlSec: number;
  challengeTtlMs: number;
  /** Device routes require a client certificate from the device CA naming the serial (`--device-client-ca`). */
  deviceClientCerts?: boolean;
  /** Upper bound of `?wait=` on the desired-state long poll. */
  maxWaitSec: number;
  /** How often this process reads the change feed of desired state (devices/change-feed.ts) for changes made by another process. */
  feedTickMs: number;
  reportHistoryLimit: number;
  /** How often sightings are written to `device_sightings`. */
  lastSeenFlushMs: number;
  /** How many verified device tokens to remember (about 0.5 KiB each); 0 disables the cache. */
  deviceTokenCacheSize: number;
  /** Enrollment requests one client address may make at once, and regains per second (a success is refunded). */
  enrollBurst: number;
  enrollPerSecond: number;
  /** Refused enrollments from one address after its first are audited as one row per this window. */
  refusalAuditWindowMs: number;
}

export type AuditActor = string | { kind: string; id: string };

export interface AuditEntry {
  actor: AuditActor;
  action: string;
  target: string;
  before?: unknown;
  after?: unknown;
}

export interface ControlPlaneContext {
  db: Db;
  client: Client;
  /** The reads of every device request, prepared once (db/point-reads.ts). */
  reads: PointReads;
  /** The process's one writer (group commit); see db/write-queue.ts. */
  write: Write;
  /** A write at once, outside the queue and the write turn (the lease's look only); see db/write-queue.ts. */
  writeAlone: WriteAlone;
  afterCommit: AfterCommit;
  log: Logger;
  events: TypedEmitter;
  now(): Date;
  config: ControlPlaneConfig;
  /** Per-address enrollment budgets kept for all workers of `--workers N` (enroll-budgets.ts); default this process's own. */
  enrollBudget?: AddressBudget;
  /** With `--workers N`: reports and enrollments written by the one writer process (cluster-batches.ts); else here. */
  batches?: RemoteBatches;
  audit(tx: Tx, entry: AuditEntry): Promise<void>;
  keys: SigningKeys;
  waiters: DesiredWaiters;
  /** Resolves image tags and names proxy repositories (through the registry proxy when configured). */
  registry: ImageRegistry;
  /** Sightings of devices (polls, reports), flushed to `device_sightings` in batches. */
  seen: LastSeen;
  /** Device tokens whose signature was already checked. */
  deviceTokens: DeviceTokenCache;
  /** Seals secrets kept in the database (signing keys, webhook secrets) with the key secret. */
  vault: KeyVault;
  /** Campaign byte totals kept between status reads (campaigns/bytes.ts). */
  byteTallies: ByteTallies;
}

/** Most JSON one side (before or after) of an audit entry keeps: a change must not make a log row of its size. */
export const MAX_AUDIT_FIELD_BYTES = 16 * 1024;

/** One side of an audit entry as stored: the JSON, or its first 4 KiB with its size when it is larger than the cap. */
export function auditField(value: unknown): string | null {
  if (value === undefined) return null;
  const json = JSON.stringify(value);
  if (Buffer.byteLength(json) <= MAX_AUDIT_FIELD_BYTES) return json;
  return JSON.stringify({ truncated: true, bytes: Buffer.byteLength(json), start: json.slice(0, 4096) });
}

export function actorName(actor: AuditActor): string {
  return typeof actor === 'string' ? actor : `${actor.kind}:${actor.id}`;
}

export interface ContextParts {
  db: Db;
  client: Client;
  /** Default: the same reads through `client`. */
  reads?: PointReads;
  log: Logger;
  events: TypedEmitter;
  config: ControlPlaneConfig;
  keys: SigningKeys;
  waiters: DesiredWaiters;
  registry: ImageRegistry;
  seen: LastSeen;
  deviceTokens: DeviceTokenCache;
  vault: KeyVault;
  now?: () => Date;
  /** Turns to write among the workers of `--workers N` (db/write-queue.ts). */
  writeTurn?: WriteTurn;
  /** Per-address enrollment budgets kept for all workers of `--workers N` (enroll-budgets.ts); default this process's own. */
  enrollBudget?: AddressBudget;
  /** With `--workers N`: the writer process's side of reports and enrollments (cluster-batches.ts). */
  batches?: RemoteBatches;
}

export function createContext(parts: ContextParts): ControlPlaneContext {
  const now = parts.now ?? (() => new Date());
  const { write, afterCommit, writeAlone } = createWriteQueue(parts.db, parts.log, parts.writeTurn);
  const ctx: ControlPlaneContext = {
    ...parts,
    reads: parts.reads ?? clientPointReads(parts.client),
    byteTallies: new ByteTallies(),
    now,
    write,
    writeAlone,
    afterCommit,
    async audit(tx: Tx, entry: AuditEntry): Promise<void> {
      // One statement, no query builder: every enrollment writes one (issue 17).
      await tx.run(sql`INSERT INTO audit_log (at, actor, action, target, before, after)
        VALUES (${now().getTime()}, ${actorName(entry.actor)}, ${entry.action}, ${entry.target}, ${auditField(entry.before)}, ${auditField(entry.after)})`);
    },
  };
  return ctx;
}
