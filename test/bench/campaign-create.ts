/**
 * A campaign over a large fleet created and started, timed statement by statement in this process
 * on a real libSQL file (issue 17): `node dist/test/bench/campaign-create.js [--devices 100000]
 * [--runs 2] [--statements] [--sequential-ids]`. Seeds N enrolled devices (2,000 of them on an older release, as the
 * control-plane bench's sample), then for each run creates a campaign over all of them (1 %,
 * 10 %, 100 %) with start: true the way POST /v1/campaigns does (the rollout checks, the create
 * transaction with its first wave, the status the answer carries), aborts it, and prints each
 * part's time; `--statements` also prints the slowest statements. The embedded driver runs
 * statements synchronously, so the wall time here is the event-loop time a control plane spends.
 * Not part of `npm run bench`: control-plane-capacity.ts times the same through HTTP once a run.
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Client, InStatement, Transaction } from '@libsql/client';
import { createLogger } from '../../common/log.js';
import { parseManifest } from '../../manifests/parse.js';
import { createContext, type ControlPlaneContext } from '../../control-plane/context.js';
import { migrate, openDatabase } from '../../control-plane/db/open.js';
import { TypedEmitter } from '../../control-plane/events.js';
import { DesiredWaiters } from '../../control-plane/devices/desired-waiters.js';
import { LastSeen } from '../../control-plane/devices/last-seen.js';
import { DeviceTokenCache } from '../../control-plane/device-api/token-cache.js';
import { checkRollout } from '../../control-plane/policy/service.js';
import { checkVariables } from '../../control-plane/vars/check.js';
import { checkSecrets } from '../../control-plane/device-secrets/check.js';
import { campaignStatus, createCampaign, operatorAction } from '../../control-plane/campaigns/service.js';
import { specFromBody } from '../../control-plane/campaigns/spec.js';
import { loadCampaign } from '../../control-plane/campaigns/store.js';
import type { OperatorActor } from '../../control-plane/http.js';
import { scratchDir } from './proc.js';

const { values } = parseArgs({ options: { devices: { type: 'string' }, runs: { type: 'string' }, statements: { type: 'boolean' }, 'sequential-ids': { type: 'boolean' } } });
const n = Number(values.devices ?? 100_000);
const runs = Number(values.runs ?? 2);
const SAMPLE = Math.min(2000, n);

/** Statement text (first 90 characters) → calls and ms, for the slowest-statements table. */
const stmts = new Map<string, { calls: number; ms: number }>();
function note(s: InStatement, ms: number): void {
  const text = (typeof s === 'string' ? s : s.sql).replace(/\s+/g, ' ').slice(0, 110);
  const e = stmts.get(text) ?? { calls: 0, ms: 0 };
  e.calls++;
  e.ms += ms;
  stmts.set(text, e);
}

/** Times every statement the drizzle session sends, in and out of transactions. */
async function instrument(client: Client): Promise<void> {
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

function manifestSpec(version: string): string {
  const parsed = parseManifest(['name: fleet-app', `version: ${version}`, 'services:', '  app:', `    image: registry.example.com/bench/app@sha256:${'a'.repeat(64)}`, '    network_mode: none', ''].join('\n'), 'bench.yaml');
  if (!parsed.ok) throw new Error(`bench manifest: ${JSON.stringify(parsed)}`);
  return JSON.stringify(parsed.manifest);
}

async function seed(client: Client, now: number): Promise<void> {
  const nums = `WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ${n})`;
  // Random ids as devices/routes.ts mints them ('dev_' and 9 random bytes), so table order is not id
  // order; `--sequential-ids` numbers them in insertion order, which hid that cost (issue 17).
  const id = (col: string) => (values['sequential-ids'] ? `'dev_' || printf('%08d', ${col})` : `'dev_' || lower(hex(randomblob(9)))`);
  await client.execute(`${nums} INSERT INTO devices (id, serial, public_key, labels, status, created_at, enrolled_at, token_epoch)
    SELECT ${id('i')}, 'sim-' || i, 'key' || i, json_object('fleet', 'sim', 'site', 's' || (i % 10), 'ring', 'r' || (i % 4)), 'enrolled', ${now}, ${now}, 0 FROM k`);
  await client.execute(`INSERT INTO device_sightings (device_id, last_seen_at) SELECT id, ${now} FROM devices`);
  for (const [mid, version] of [['man_1', '1.0.0'], ['man_2', '2.0.0']]) {
    await client.execute({ sql: `INSERT INTO manifests (id, name, version, digest, spec, source, published_at, published_by) VALUES (?, 'fleet-app', ?, ?, ?, '', ?, 'bench')`, args: [mid, version, `sha256:${mid}`, manifestSpec(version), now] });
  }
  await client.execute(`INSERT INTO desired (device_id, manifest_id, sequence, issued_at) SELECT id, 'man_1', 1, ${now} FROM devices ORDER BY rowid LIMIT ${SAMPLE}`);
}

const time = async <T>(fn: () => Promise<T>): Promise<[number, T]> => {
  const t0 = performance.now();
  const out = await fn();
  return [performance.now() - t0, out];
};

const dir = scratchDir('campaign-create');
const log = createLogger('campaign-create', { level: 'warn' });
const { client, db } = await openDatabase(`file:${join(dir.dir, 'berth.db')}`);
try {
  await migrate(client, log);
  const ctx: ControlPlaneContext = createContext({ db, client, log, events: new TypedEmitter(), config: { offlineAfterMs: 120_000, reportHistoryLimit: 50 } as ControlPlaneContext['config'], keys: { vault: undefined } as never, waiters: new DesiredWaiters(), registry: undefined as never, seen: new LastSeen(), deviceTokens: new DeviceTokenCache(0), vault: undefined as never });
  const [seedMs] = await time(() => seed(client, Date.now()));
  console.log(`seeded ${n} enrolled devices (${SAMPLE} on fleet-app@1.0.0) in ${(seedMs / 1000).toFixed(1)} s; load ${loadavg()[0].toFixed(1)}`);
  await instrument(client);
  const actor: OperatorActor = { kind: 'operator', id: 'bench', role: 'admin' } as OperatorActor;
  for (let r = 0; r < runs; r++) {
    stmts.clear();
    const spec = specFromBody({ manifest: 'fleet-app@2.0.0', selector: '', waves: ['1%', '10%', '100%'], soak: '0', start: true } as unknown as Parameters<typeof specFromBody>[0]);
    const manifest = JSON.parse(manifestSpec('2.0.0'));
    const t0 = performance.now();
    const [checksMs] = await time(async () => {
      await checkRollout(ctx.db, spec.release, manifest, spec.selector);
      await checkVariables(ctx.db, spec.release, manifest, spec.selector);
      await checkSecrets(ctx.db, manifest, spec.selector);
    });
    const [createMs, out] = await time(() => createCampaign(ctx, actor, { spec, supersede: false, start: true }));
    if (out.kind !== 'created') throw new Error(`create: ${out.kind}`);
    const [statusMs, status] = await time(async () => campaignStatus(ctx, (await loadCampaign(ctx.db, out.id))!, Date.now()));
    const total = performance.now() - t0;
    const w = status.waves[0];
    console.log(`run ${r + 1}: checks ${checksMs.toFixed(0)} ms, create+start ${createMs.toFixed(0)} ms, status ${statusMs.toFixed(0)} ms: ${total.toFixed(0)} ms to wave 1 (${w.devices.assigned} of ${w.cumulativeDevices} assigned); load ${loadavg()[0].toFixed(1)}`);
    if (values.statements) {
      const top = [...stmts.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 14);
      for (const [text, e] of top) console.log(`  ${e.ms.toFixed(1).padStart(8)} ms ${String(e.calls).padStart(5)}x  ${text}`);
    }
    const [abortMs] = await time(() => operatorAction(ctx, actor, out.id, 'abort'));
    console.log(`  abort ${abortMs.toFixed(0)} ms`);
  }
} finally {
  client.close();
  dir.remove();
}
