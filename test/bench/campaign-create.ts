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
import type { Client } from '@libsql/client';
import { createLogger } from '../../common/log.js';
import { migrate, openDatabase } from '../../control-plane/db/open.js';
import { checkRollout } from '../../control-plane/policy/service.js';
import { checkVariables } from '../../control-plane/vars/check.js';
import { checkSecrets } from '../../control-plane/device-secrets/check.js';
import { campaignStatus, createCampaign, operatorAction } from '../../control-plane/campaigns/service.js';
import { specFromBody } from '../../control-plane/campaigns/spec.js';
import { loadCampaign } from '../../control-plane/campaigns/store.js';
import type { OperatorActor } from '../../control-plane/http.js';
import { benchContext, manifestSpec, publishBenchManifest, seedDevices, StatementTimes } from './campaign-db.js';
import { scratchDir } from './proc.js';

const { values } = parseArgs({ options: { devices: { type: 'string' }, runs: { type: 'string' }, statements: { type: 'boolean' }, 'sequential-ids': { type: 'boolean' } } });
const n = Number(values.devices ?? 100_000);
const runs = Number(values.runs ?? 2);
const SAMPLE = Math.min(2000, n);

const stmts = new StatementTimes();

async function seed(client: Client, now: number): Promise<void> {
  await seedDevices(client, n, now, values['sequential-ids']);
  await publishBenchManifest(client, 'man_1', '1.0.0', now);
  await publishBenchManifest(client, 'man_2', '2.0.0', now);
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
  const ctx = benchContext(db, client, log);
  const [seedMs] = await time(() => seed(client, Date.now()));
  console.log(`seeded ${n} enrolled devices (${SAMPLE} on fleet-app@1.0.0) in ${(seedMs / 1000).toFixed(1)} s; load ${loadavg()[0].toFixed(1)}`);
  await stmts.instrument(client);
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
      for (const line of stmts.top(14)) console.log(line);
    }
    const [abortMs] = await time(() => operatorAction(ctx, actor, out.id, 'abort'));
    console.log(`  abort ${abortMs.toFixed(0)} ms`);
  }
} finally {
  client.close();
  dir.remove();
}
