/**
 * A 100,000-device campaign created through HTTP, as control-plane-capacity.ts times it, on its
 * own: `node dist/test/bench/campaign-http.js [--devices 100000] [--runs 1]
 * [--bins OTHER/dist/bin/berth.js,this] [--sequential-ids]`. For each run and each build (alternating,
 * so a change in the shared machine's load falls on both alike): starts `berth control-plane`
 * on a fresh database, stops it, inserts the devices and two releases straight into its file,
 * starts it again, then POSTs the campaign (1 %, 10 %, 100 %, start: true) and polls its status
 * every 50 ms until the first wave is assigned. Device ids are random like the enrollment
 * route's (devices/routes.ts) and the capacity bench's; `--sequential-ids` numbers them in
 * insertion order instead, which hid the cost of random ids (issue 17). Not part of `npm run bench`.
 */
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '@libsql/client';
import { parseManifest } from '../../manifests/parse.js';
import { BERTH_BIN, scratchDir } from './proc.js';
import { operator, startControlPlaneProcess } from './services.js';

const { values } = parseArgs({ options: { devices: { type: 'string' }, runs: { type: 'string' }, bins: { type: 'string' }, 'sequential-ids': { type: 'boolean' } } });
const n = Number(values.devices ?? 100_000);
const runs = Number(values.runs ?? 1);
const bins = (values.bins ?? 'this').split(',').filter(Boolean);
const binOf = (b: string): string => (b === 'this' ? BERTH_BIN : b);
// 'dev_' and 9 random bytes, as devices/routes.ts mints them (hex here, base64url there: both random order).
const deviceId = values['sequential-ids'] ? `'dev_' || printf('%08d', i)` : `'dev_' || lower(hex(randomblob(9)))`;

function manifestSpec(version: string): string {
  const parsed = parseManifest(['name: fleet-app', `version: ${version}`, 'services:', '  app:', `    image: registry.example.com/bench/app@sha256:${'a'.repeat(64)}`, '    network_mode: none', ''].join('\n'), 'bench.yaml');
  if (!parsed.ok) throw new Error(`bench manifest: ${JSON.stringify(parsed.errors)}`);
  return JSON.stringify(parsed.manifest);
}

/** Seconds to the POST's answer and to the first wave read as assigned, with build `bin`. */
async function once(bin: string): Promise<{ posted: number; total: number }> {
  const dir = scratchDir('campaign-http');
  const cp = await startControlPlaneProcess(dir.dir);
  try {
    await cp.child.stop(10_000);
    const client = createClient({ url: `file:${cp.dbFile}` });
    const now = Date.now();
    await client.execute(`WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ${n}) INSERT INTO devices (id, serial, public_key, labels, status, created_at, enrolled_at, token_epoch)
      SELECT ${deviceId}, 'sim-' || i, 'key' || i, json_object('fleet', 'sim', 'site', 's' || (i % 10)), 'enrolled', ${now}, ${now}, 0 FROM k`);
    await client.execute(`INSERT INTO device_sightings (device_id, last_seen_at) SELECT id, ${now} FROM devices`);
    for (const [id, version] of [['man_1', '1.0.0'], ['man_2', '2.0.0']]) {
      await client.execute({ sql: `INSERT INTO manifests (id, name, version, digest, spec, source, published_at, published_by) VALUES (?, 'fleet-app', ?, ?, ?, '', ?, 'bench')`, args: [id, version, `sha256:${id}`, manifestSpec(version), now] });
    }
    await client.execute(`INSERT INTO desired (device_id, manifest_id, sequence, issued_at) SELECT id, 'man_1', 1, ${now} FROM devices LIMIT 2000`);
    client.close();
    await cp.restart({ bin: binOf(bin) });
    const t0 = performance.now();
    const created = await operator(cp, 'POST', '/v1/campaigns', { json: { name: 'bench-all', manifest: 'fleet-app@2.0.0', selector: '', waves: ['1%', '10%', '100%'], soak: '0', start: true } });
    const posted = (performance.now() - t0) / 1000;
    for (;;) {
      const s = (await operator(cp, 'GET', `/v1/campaigns/${String(created.id)}`)) as { waves: { cumulativeDevices: number; devices: { assigned: number; succeeded: number } }[] };
      const w = s.waves[0];
      if (w.devices.assigned + w.devices.succeeded >= w.cumulativeDevices && w.cumulativeDevices > 0) break;
      if (performance.now() - t0 > 120_000) throw new Error('first wave not assigned after 120 s');
      await sleep(50);
    }
    return { posted, total: (performance.now() - t0) / 1000 };
  } finally {
    await cp.stop();
    dir.remove();
  }
}

const totals = new Map<string, number[]>(bins.map((b) => [b, []]));
for (let r = 0; r < runs; r++) {
  for (const bin of bins) {
    const t = await once(bin);
    totals.get(bin)?.push(t.total);
    console.log(`run ${r + 1} ${bin}: campaign over ${n} devices (${values['sequential-ids'] ? 'sequential' : 'random'} ids): POST answered in ${t.posted.toFixed(2)} s, first wave assigned in ${t.total.toFixed(2)} s; load ${loadavg()[0].toFixed(1)}`);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
if (bins.length > 1) {
  const [first, ...rest] = bins;
  for (const b of rest) console.log(`${b} / ${first}: ${(median(totals.get(b) ?? []) / median(totals.get(first) ?? [])).toFixed(2)} (medians ${median(totals.get(b) ?? []).toFixed(2)} / ${median(totals.get(first) ?? []).toFixed(2)} s)`);
}
