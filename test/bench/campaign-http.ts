/**
 * A 100,000-device campaign created through HTTP, as control-plane-capacity.ts times it, on its
 * own: `node dist/test/bench/campaign-http.js [--devices 100000]`. Starts `berth control-plane`
 * (this build's), stops it, inserts the devices and two releases straight into its database file,
 * starts it again, then POSTs the campaign (1 %, 10 %, 100 %, start: true) and polls its status
 * every 50 ms until the first wave is assigned. Seconds a few minutes apart from the full bench,
 * to compare builds side by side (issue 17). Not part of `npm run bench`.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '@libsql/client';
import { parseManifest } from '../../manifests/parse.js';
import { scratchDir } from './proc.js';
import { operator, startControlPlaneProcess } from './services.js';

const { values } = parseArgs({ options: { devices: { type: 'string' } } });
const n = Number(values.devices ?? 100_000);

function manifestSpec(version: string): string {
  const parsed = parseManifest(['name: fleet-app', `version: ${version}`, 'services:', '  app:', `    image: registry.example.com/bench/app@sha256:${'a'.repeat(64)}`, '    network_mode: none', ''].join('\n'), 'bench.yaml');
  if (!parsed.ok) throw new Error(`bench manifest: ${JSON.stringify(parsed.errors)}`);
  return JSON.stringify(parsed.manifest);
}

const dir = scratchDir('campaign-http');
const cp = await startControlPlaneProcess(dir.dir);
try {
  await cp.child.stop(10_000);
  const client = createClient({ url: `file:${cp.dbFile}` });
  const now = Date.now();
  await client.execute(`WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ${n}) INSERT INTO devices (id, serial, public_key, labels, status, created_at, enrolled_at, last_seen_at, token_epoch)
    SELECT 'dev_' || printf('%08d', i), 'sim-' || i, 'key' || i, json_object('fleet', 'sim', 'site', 's' || (i % 10)), 'enrolled', ${now}, ${now}, ${now}, 0 FROM k`);
  for (const [id, version] of [['man_1', '1.0.0'], ['man_2', '2.0.0']]) {
    await client.execute({ sql: `INSERT INTO manifests (id, name, version, digest, spec, source, published_at, published_by) VALUES (?, 'fleet-app', ?, ?, ?, '', ?, 'bench')`, args: [id, version, `sha256:${id}`, manifestSpec(version), now] });
  }
  await client.execute(`INSERT INTO desired (device_id, manifest_id, sequence, issued_at) SELECT id, 'man_1', 1, ${now} FROM devices LIMIT 2000`);
  client.close();
  await cp.restart();
  const t0 = performance.now();
  const created = await operator(cp, 'POST', '/v1/campaigns', { json: { name: 'bench-all', manifest: 'fleet-app@2.0.0', selector: '', waves: ['1%', '10%', '100%'], soak: '0', start: true } });
  const posted = performance.now() - t0;
  for (;;) {
    const s = (await operator(cp, 'GET', `/v1/campaigns/${String(created.id)}`)) as { waves: { cumulativeDevices: number; devices: { assigned: number; succeeded: number } }[] };
    const w = s.waves[0];
    if (w.devices.assigned + w.devices.succeeded >= w.cumulativeDevices && w.cumulativeDevices > 0) break;
    if (performance.now() - t0 > 120_000) throw new Error('first wave not assigned after 120 s');
    await sleep(50);
  }
  console.log(`campaign over ${n} devices: POST answered in ${(posted / 1000).toFixed(2)} s, first wave assigned in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
} finally {
  await cp.stop();
  dir.remove();
}
