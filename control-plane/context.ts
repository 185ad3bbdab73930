import type { Client } from '@libsql/client';
import type { Logger } from '../common/log.js';
import { auditLog } from './db/schema.js';
import type { Db } from './db/open.js';
import type { TypedEmitter } from './events.js';
import type { SigningKeys } from './signing-keys.js';
import type { DesiredWaiters } from './devices/desired-waiters.js';
import type { ImageRegistry } from './manifests/registry.js';
import type { LastSeen } from './devices/last-seen.js';
import type { DeviceTokenCache } from './device-api/token-cache.js';

export type { Db };
/** A drizzle write transaction, as `ctx.write` hands it out. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

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
  /** Upper bound of `?wait=` on the desired-state long poll. */
  maxWaitSec: number;
  /** How often the desired-state watcher looks for assignments made by another process. */
  pollFallbackMs: number;
  reportHistoryLimit: number;
  /** How often sightings are written to `devices.last_seen_at`. */
  lastSeenFlushMs: number;
  /** How many verified device tokens to remember (about 0.5 KiB each); 0 disables the cache. */
  deviceTokenCacheSize: number;
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
  /**
   * Runs `fn` in a write transaction and resolves once it is committed. Writes are serialized in
   * process (a libSQL transaction holds its own connection; two at once would meet SQLITE_BUSY);
   * writes queued meanwhile share the next commit, each in its own savepoint.
   */
  write<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  /** Runs `fn` once the current `write` has committed (dropped if it rolls back). */
  afterCommit(tx: Tx, fn: () => void): void;
  log: Logger;
  events: TypedEmitter;
  now(): Date;
  config: ControlPlaneConfig;
  audit(tx: Tx, entry: AuditEntry): Promise<void>;
  keys: SigningKeys;
  waiters: DesiredWaiters;
  /** Resolves image tags and names proxy repositories (through the registry proxy when configured). */
  registry: ImageRegistry;
  /** Sightings of devices (polls, reports), flushed to `devices.last_seen_at` in batches. */
  seen: LastSeen;
  /** Device tokens whose signature was already checked. */
  deviceTokens: DeviceTokenCache;
}

export function actorName(actor: AuditActor): string {
  return typeof actor === 'string' ? actor : `${actor.kind}:${actor.id}`;
}

export interface ContextParts {
  db: Db;
  client: Client;
  log: Logger;
  events: TypedEmitter;
  config: ControlPlaneConfig;
  keys: SigningKeys;
  waiters: DesiredWaiters;
  registry: ImageRegistry;
  seen: LastSeen;
  deviceTokens: DeviceTokenCache;
  now?: () => Date;
}

/** At most this many queued writes share one commit. */
const MAX_GROUP = 64;

interface QueuedWrite {
  fn: (tx: Tx) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  hooks: (() => void)[];
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

export function createContext(parts: ContextParts): ControlPlaneContext {
  const queue: QueuedWrite[] = [];
  let draining = false;
  // Writes run one at a time, so at most one write's hooks are being collected at any moment.
  let hooks: (() => void)[] | null = null;
  const now = parts.now ?? (() => new Date());

  /**
   * Group commit: the writes queued while a commit is in flight go together into the next
   * transaction, each in its own savepoint (one failing rolls back only itself), so N writes cost
   * one fsync. Each caller is answered only after the commit that holds its write.
   */
  async function drain(): Promise<void> {
    try {
      while (queue.length > 0) {
        // The embedded driver runs statements synchronously, so nothing else moves while a group
        // commits; yielding to the event loop first lets the requests that arrived meanwhile join.
        await new Promise((resolve) => setImmediate(resolve));
        const group = queue.splice(0, MAX_GROUP);
        const outcomes: Outcome[] = [];
        try {
          await parts.db.transaction(async (tx) => {
            for (const item of group) {
              hooks = item.hooks;
              try {
                const value = group.length === 1 ? await item.fn(tx) : await tx.transaction((sp) => item.fn(sp));
                outcomes.push({ ok: true, value });
              } catch (error) {
                outcomes.push({ ok: false, error });
                if (group.length === 1) throw error;
              } finally {
                hooks = null;
              }
            }
          });
        } catch (err) {
          group.forEach((item, i) => {
            const o = outcomes[i];
            item.reject(o && !o.ok ? o.error : err);
          });
          continue;
        }
        group.forEach((item, i) => {
          const o = outcomes[i];
          if (!o.ok) {
            item.reject(o.error);
            return;
          }
          for (const hook of item.hooks) {
            try {
              hook();
            } catch (err) {
              parts.log.error({ err }, 'after-commit hook failed');
            }
          }
          item.resolve(o.value);
        });
      }
    } finally {
      draining = false;
    }
  }

  const ctx: ControlPlaneContext = {
    ...parts,
    now,
    write<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push({ fn, resolve: resolve as (v: unknown) => void, reject, hooks: [] });
        if (!draining) {
          draining = true;
          void drain();
        }
      });
    },
    afterCommit(_tx: Tx, fn: () => void): void {
      if (hooks) hooks.push(fn);
      // Not inside ctx.write: the caller committed on its own; run soon (long polls re-check the DB anyway).
      else setImmediate(fn);
    },
    async audit(tx: Tx, entry: AuditEntry): Promise<void> {
      await tx.insert(auditLog).values({
        at: now().getTime(),
        actor: actorName(entry.actor),
        action: entry.action,
        target: entry.target,
        before: entry.before === undefined ? null : JSON.stringify(entry.before),
        after: entry.after === undefined ? null : JSON.stringify(entry.after),
      });
    },
  };
  return ctx;
}
