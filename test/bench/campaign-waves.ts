/**
 * A 1 %/10 %/100 % campaign over a large fleet driven wave by wave in this process on a real libSQL
 * file, each wave's slices timed (issue 17: the last wave of fleet-sim at 100,000 devices was
 * assigned at ~900 devices/s): `node dist/test/bench/campaign-waves.js [--devices 100000]
 * [--slice 2500] [--churn] [--statements]`. Seeds N enrolled devices without a desired row (as
 * fleet-sim's), creates and starts the campaign the way POST /v1/campaigns does, then marks every
 * assigned device succeeded and advances a slice a write until the campaign completes. `--churn`
 * writes from a second connection between slices (400 devices' sightings, as the writer process
 * commits meanwhile), so each slice starts with its connection's page cache
 * dropped, as in a cluster. `--statements` prints the slowest statements of the last wave. The
 * embedded driver runs statements synchronously: the wall time here is the event-loop time a
 * control plane spends. Not part of `npm run bench`.
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createClient, type Client } from '@libsql/client';
import { createLogger } from '../../common/log.js';
import { migrate, openDatabase } from '../../control-plane/db/open.js';
import { createCampaign } from '../../control-plane/campaigns/service.js';
import { advanceCampaign, advancedInPart, WAVE_SLICE } from '../../control-plane/campaigns/executor.js';
import { specFromBody } from '../../control-plane/campaigns/spec.js';
import type { OperatorActor } from '../../control-plane/http.js';
import { createCampaignBody } from '../../protocol/campaign-spec.js';
import { benchContext, publishBenchManifest, seedDevices, StatementTimes } from './campaign-db.js';
import { scratchDir } from './proc.js';

const { values } = parseArgs({ options: { devices: { type: 'string' }, slice: { type: 'string' }, churn: { type: 'boolean' }, statements: { type: 'boolean' } } });
const n = Number(values.devices ?? 100_000);
const slice = Number(values.slice ?? WAVE_SLICE);

const stmts = new StatementTimes(150);

async function seed(client: Client, now: number): Promise<void> {
  await seedDevices(client, n, now);
  await publishBenchManifest(client, 'man_1', '1.0.0', now);
}

const dir = scratchDir('campaign-waves');
const log = createLogger('campaign-waves', { level: 'warn' });
const file = join(dir.dir, 'berth.db');
const { client, db } = await openDatabase(`file:${file}`);
const other = createClient({ url: `file:${file}`, timeout: 5000 });
try {
  await migrate(client, log);
  const ctx = benchContext(db, client, log);
  const t0 = performance.now();
  await seed(client, Date.now());
  console.log(`seeded ${n} enrolled devices in ${((performance.now() - t0) / 1000).toFixed(1)} s; slice ${slice}${values.churn ? ', churn between slices' : ''}; load ${loadavg()[0].toFixed(1)}`);
  const ids = (await other.execute('SELECT id FROM devices')).rows.map((r) => String(r.id));
  await stmts.instrument(client);
  const actor = { kind: 'operator', id: 'bench', role: 'admin' } as OperatorActor;
  const spec = specFromBody(createCampaignBody.parse({ name: 'waves', manifest: 'fleet-app@1.0.0', selector: 'fleet=sim', waves: ['1%', '10%', '100%'], soak: '0', start: true }));
  const c0 = performance.now();
  const out = await createCampaign(ctx, actor, { spec, supersede: false, start: true });
  if (out.kind !== 'created') throw new Error(`create: ${out.kind}`);
  console.log(`create+start ${(performance.now() - c0).toFixed(0)} ms`);
  for (let wave = 1; wave <= 2; wave++) {
    await client.execute(`UPDATE campaign_devices SET state = 'succeeded', finished_at = ${Date.now()} WHERE campaign_id = '${out.id}' AND state = 'assigned'`);
    stmts.clear();
    const times: number[] = [];
    const w0 = performance.now();
    for (;;) {
      if (values.churn) {
        const at = Date.now();
        const pick = Array.from({ length: 400 }, () => ids[Math.floor(Math.random() * ids.length)]);
        await other.execute({ sql: `UPDATE device_sightings SET last_seen_at = ? WHERE device_id IN (${pick.map(() => '?').join(',')})`, args: [at, ...pick] });
      }
      const s0 = performance.now();
      const applied = await ctx.write((tx) => advanceCampaign(ctx, tx, out.id, slice));
      times.push(performance.now() - s0);
      if (!advancedInPart(applied, slice)) break;
    }
    const total = performance.now() - w0;
    const [{ n: assigned }] = (await other.execute(`SELECT count(*) AS n FROM campaign_devices WHERE campaign_id = '${out.id}' AND state = 'assigned'`)).rows as unknown as { n: number }[];
    const sorted = [...times].sort((a, b) => a - b);
    console.log(`wave ${wave + 1}: ${assigned} assigned in ${times.length} writes, ${total.toFixed(0)} ms (${((Number(assigned) / total) * 1000).toFixed(0)} devices/s); a write: median ${sorted[Math.floor(sorted.length / 2)].toFixed(0)} ms, max ${sorted[sorted.length - 1].toFixed(0)} ms; load ${loadavg()[0].toFixed(1)}`);
    if (values.statements) {
      for (const line of stmts.top(16)) console.log(line);
    }
  }
  const [{ n: changes }] = (await other.execute('SELECT count(*) AS n FROM desired_changes')).rows as unknown as { n: number }[];
  console.log(`change-feed rows: ${changes}`);
} finally {
  other.close();
  client.close();
  dir.remove();
}
