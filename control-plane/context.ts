import type { Client } from '@libsql/client';
import type { Logger } from '../common/log.js';
import { auditLog } from './db/schema.js';
import type { Db } from './db/open.js';
import type { TypedEmitter } from './events.js';
import type { SigningKeys } from './signing-keys.js';
import type { DesiredWaiters } from './desired-waiters.js';
import type { ImageRegistry } from './registry.js';

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
  /** How often a long poll re-reads the database, to see changes made by another process. */
  pollFallbackMs: number;
  reportHistoryLimit: number;
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
   * Runs `fn` in one write transaction. Writes are serialized by an in-process mutex, because a
   * libSQL transaction holds its own connection and two concurrent ones would fail with SQLITE_BUSY.
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
}

export function actorName(actor: AuditActor): string {
  return typeof actor === 'string' ? actor : `${actor.kind}:${actor.id}`;
}

/** A promise chain: each task starts when the previous one settled. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task, task);
    this.tail = result.catch(() => undefined);
    return result;
  }
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
  now?: () => Date;
}

export function createContext(parts: ContextParts): ControlPlaneContext {
  const mutex = new Mutex();
  // Writes are serialized, so at most one write's hooks are being collected at any time.
  let hooks: (() => void)[] | null = null;
  const now = parts.now ?? (() => new Date());
  const ctx: ControlPlaneContext = {
    ...parts,
    now,
    write<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
      return mutex.run(async () => {
        const mine: (() => void)[] = [];
        hooks = mine;
        let result: T;
        try {
          result = await parts.db.transaction((tx) => fn(tx));
        } finally {
          hooks = null;
        }
        for (const hook of mine) {
          try {
            hook();
          } catch (err) {
            parts.log.error({ err }, 'after-commit hook failed');
          }
        }
        return result;
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
