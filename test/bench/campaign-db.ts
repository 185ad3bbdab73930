/**
 * What the in-process campaign benches share (campaign-create.ts, campaign-waves.ts): a control
 * plane's context over a real libSQL file without HTTP, a fleet seeded in SQL, the bench manifest,
 * and a timer of every statement the context sends.
 */
import type { Client, InStatement, Transaction } from '@libsql/client';
import type { Logger } from '../../common/log.js';
import { parseManifest } from '../../manifests/parse.js';
import { createContext, type ControlPlaneContext } from '../../control-plane/context.js';
import type { Db } from '../../control-plane/db/open.js';
import { TypedEmitter } from '../../control-plane/events.js';
import { DesiredWaiters } from '../../control-plane/devices/desired-waiters.js';
import { LastSeen } from '../../control-plane/devices/last-seen.js';
import { DeviceTokenCache } from '../../control-plane/device-api/token-cache.js';

/** The campaign services' context on `db`: no keys, registry or vault (the bench manifests need none). */
export function benchContext(db: Db, client: Client, log: Logger): ControlPlaneContext {
  return createContext({ db, client, log, events: new TypedEmitter(), config: { offlineAfterMs: 120_000, reportHistoryLimit: 50 } as ControlPlaneContext['config'], keys: { vault: undefined } as never, waiters: new DesiredWaiters(), registry: undefined as never, seen: new LastSeen(), deviceTokens: new DeviceTokenCache(0), vault: undefined as never });
}

/** The published spec (JSON) of `fleet-app@version`: one service by digest, no variables or secrets. */
export function manifestSpec(version: string): string {
  const parsed = parseManifest(['name: fleet-app', `version: ${version}`, 'services:', '  app:', `    image: registry.example.com/bench/app@sha256:${'a'.repeat(64)}`, '    network_mode: none', ''].join('\n'), 'bench.yaml');
  if (!parsed.ok) throw new Error(`bench manifest: ${JSON.stringify(parsed)}`);
  return JSON.stringify(parsed.manifest);
}

/**
 * `n` enrolled devices labelled fleet=sim (and site, ring), each with a sighting. Random ids as
 * devices/routes.ts mints them ('dev_' and 9 random bytes), so table order is not id order;
 * `sequentialIds` numbers them in insertion order, which hid that cost (issue 17).
 */
export async function seedDevices(client: Client, n: number, now: number, sequentialIds = false): Promise<void> {
  const nums = `WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ${n})`;
  const id = sequentialIds ? `'dev_' || printf('%08d', i)` : `'dev_' || lower(hex(randomblob(9)))`;
  await client.execute(`${nums} INSERT INTO devices (id, serial, public_key, labels, status, created_at, enrolled_at, token_epoch)
    SELECT ${id}, 'sim-' || i, 'key' || i, json_object('fleet', 'sim', 'site', 's' || (i % 10), 'ring', 'r' || (i % 4)), 'enrolled', ${now}, ${now}, 0 FROM k`);
  await client.execute(`INSERT INTO device_sightings (device_id, last_seen_at) SELECT id, ${now} FROM devices`);
}

/** Publishes `fleet-app@version` as manifest `id`. */
export async function publishBenchManifest(client: Client, id: string, version: string, now: number): Promise<void> {
  await client.execute({ sql: `INSERT INTO manifests (id, name, version, digest, spec, source, published_at, published_by) VALUES (?, 'fleet-app', ?, ?, ?, '', ?, 'bench')`, args: [id, version, `sha256:${id}`, manifestSpec(version), now] });
}

/** Statement text (its start) → calls and ms, for the slowest-statements table. */
export class StatementTimes {
  private readonly byText = new Map<string, { calls: number; ms: number }>();

  constructor(private readonly width = 110) {}

  note(s: InStatement, ms: number): void {
    const text = (typeof s === 'string' ? s : s.sql).replace(/\s+/g, ' ').slice(0, this.width);
    const e = this.byText.get(text) ?? { calls: 0, ms: 0 };
    e.calls++;
    e.ms += ms;
    this.byText.set(text, e);
  }

  clear(): void {
    this.byText.clear();
  }

  /** The `count` slowest by total time, a line each. */
  top(count: number): string[] {
    return [...this.byText.entries()]
      .sort((a, b) => b[1].ms - a[1].ms)
      .slice(0, count)
      .map(([text, e]) => `  ${e.ms.toFixed(1).padStart(8)} ms ${String(e.calls).padStart(5)}x  ${text}`);
  }

  /** Times every statement `client` runs, in and out of transactions (the embedded driver runs them synchronously: wall time is event-loop time). */
  async instrument(client: Client): Promise<void> {
    const note = (s: InStatement, ms: number) => this.note(s, ms);
    const execute = client.execute.bind(client);
    client.execute = (async (s: InStatement) => {
      const t0 = performance.now();
      try {
        return await execute(s);
      } finally {
        note(s, performance.now() - t0);
      }
    }) as Client['execute'];
    // The write transactions are the writer's own (db/writer.ts, behind a Proxy): time them on their prototype.
    const probe = await client.transaction('write');
    const proto = Object.getPrototypeOf(probe) as Transaction;
    await probe.rollback();
    probe.close();
    const txExecute = proto.execute;
    proto.execute = async function (this: Transaction, s: InStatement) {
      const t0 = performance.now();
      try {
        return await txExecute.call(this, s);
      } finally {
        note(s, performance.now() - t0);
      }
    };
    const commit = proto.commit;
    proto.commit = async function (this: Transaction) {
      const t0 = performance.now();
      try {
        return await commit.call(this);
      } finally {
        note('COMMIT', performance.now() - t0);
      }
    };
  }
}
