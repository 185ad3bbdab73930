import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Campaign } from '../../cli/client.js';
import { busyboxLayer, forgeImage, variant, type ForgedImage } from '../rig/forge.js';
import { rigFromEnv } from '../rig/index.js';
import { appLayer, pushIndex } from './delta-fixtures.js';
import { Fleet, waitFor } from './fleet.js';

/**
 * Layer deltas as a release manager sees them (issue 11), over real HTTP against the real services
 * (control plane, registry proxy, an edge daemon on the rig's engine), read through the CLI: the
 * twin says what an update moved against what its layers weigh in full and whether deltas carried
 * it, and the campaign sums it; and the deltas are prepared on the proxy when the campaign is created.
 */
const rig = rigFromEnv();
const run = randomBytes(4).toString('hex');
const repo = `berth-test/campaign-delta-${run}`;
const SERIAL = `cdelta-${run}`;
let fleet: Fleet;
let dir: string;
const images: ForgedImage[] = [];

async function publish(version: string, image: ForgedImage | string): Promise<void> {
  const file = join(dir, `delta-${version}.yaml`);
  await writeFile(file, ['name: delta-app', `version: ${version}`, 'services:', '  app:', `    image: ${typeof image === 'string' ? image : image.tagReference}`, '    network_mode: none', '    command: ["sleep", "3600"]', ''].join('\n'));
  const r = await fleet.cli(['apply', '-f', file]);
  if (r.code !== 0) throw new Error(`berth apply ${version} exited ${r.code}: ${r.stderr}`);
}

async function rollOut(release: string, beforeStart?: () => Promise<void>): Promise<Campaign> {
  const c = await fleet.cliJson<Campaign>(['campaign', 'create', '--manifest', release, '--selector', `run=${run}`, '--waves', '100%', '--device-timeout', '3m']);
  await beforeStart?.();
  const started = await fleet.cli(['campaign', 'start', c.id]);
  if (started.code !== 0) throw new Error(`berth campaign start exited ${started.code}: ${started.stderr}`);
  const done = await fleet.waitForCampaign(c.id, ['completed', 'failed', 'aborted'], 180_000);
  expect(done.status).toBe('completed');
  return done;
}

/** The deltas in the proxy's cache (registry-proxy/delta/cache.ts: <cache>/deltas/blobs/<hex>). */
function deltasCached(): string[] {
  const blobs = join(dir, 'proxy-cache', 'deltas', 'blobs');
  return existsSync(blobs) ? readdirSync(blobs).sort() : [];
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-campaign-delta-'));
  const base = { files: { ...busyboxLayer().files, '/etc/berth-run': run } };
  for (const v of [1, 2] as const) images.push(await forgeImage(rig.registry, repo, `v${v}`, { layers: [base, appLayer(run, v)], config: { Cmd: ['sleep', '3600'] } }));
  fleet = await Fleet.start({ engine: rig, dir, gateways: [{ serial: SERIAL, labels: { run } }] });
  expect((await fleet.cliJson<{ created: number }>(['devices', 'import', fleet.recordsFile])).created).toBe(1);
  await fleet.startGateway(SERIAL);
});

afterAll(async () => {
  await fleet?.stop({ removeDir: true });
});

describe('update bytes in the twin and the campaign (real services, real HTTP)', { timeout: 300_000 }, () => {
  it('a first install moves its layers in full: the twin says so, without "(delta)"', async () => {
    await publish('1.0.0', images[0]);
    const c = await rollOut('delta-app@1.0.0');
    const twin = await fleet.twin(SERIAL);
    const layers = images[0].manifest.layers.reduce((n, l) => n + l.size, 0);
    expect(twin.reported?.bytes).toEqual({ done: layers, total: layers, full: layers, delta: false });
    expect(c.bytes).toEqual({ moved: layers, full: layers, devices: 1, viaDelta: 0 });
    expect((await fleet.cli(['devices', 'show', SERIAL])).stdout).not.toContain('(delta)');
  });

  it('an update through a layer delta, prepared when the campaign was created: "X of Y (delta)" in devices show, moved against full in the campaign', async () => {
    await publish('2.0.0', images[1]);
    expect(deltasCached()).toEqual([]);
    // The campaign is a draft: no device has been told to update, so whatever delta the proxy holds
    // it computed because the control plane asked at creation.
    let prepared: string[] = [];
    const c = await rollOut('delta-app@2.0.0', async () => {
      prepared = await waitFor('the proxy to hold the delta v1 → v2', async () => (deltasCached().length > 0 ? deltasCached() : undefined), { timeoutMs: 120_000 });
    });
    expect(prepared).toHaveLength(1);
    // The device used that one: nothing computed again.
    expect(deltasCached()).toEqual(prepared);
    await fleet.waitForRelease([SERIAL], 'delta-app@2.0.0');
    const bytes = (await fleet.twin(SERIAL)).reported?.bytes;
    // Only the app layer changed: its full size is what the update weighs; the delta is far less.
    const full = images[1].manifest.layers[1].size;
    expect(bytes).toMatchObject({ full, delta: true });
    expect(bytes!.done).toBeGreaterThan(0);
    expect(bytes!.done).toBeLessThan(full / 4);
    expect(bytes!.done).toBe(bytes!.total);
    const shown = (await fleet.cli(['devices', 'show', SERIAL])).stdout;
    expect(shown).toMatch(/reported:\s+delta-app@2\.0\.0, phase running of sequence \d+, [\d.]+ (B|KiB|MiB) of [\d.]+ (KiB|MiB) \(delta\)/);
    expect(c.bytes).toEqual({ moved: bytes!.done, full, devices: 1, viaDelta: 1 });
    const status = (await fleet.cli(['campaign', 'status', c.id])).stdout;
    expect(status).toMatch(/bytes:\s+[\d.]+ (B|KiB|MiB) of [\d.]+ (KiB|MiB) moved by 1 device, 1 through layer deltas/);
  });

  it('a multi-platform update: the deltas are prepared for the platform the devices report (the proxy does not guess among an index\'s images)', async () => {
    // v3: this machine's image patched once more, in an index listing another platform first.
    const base = { files: { ...busyboxLayer().files, '/etc/berth-run': run } };
    const app3 = variant(appLayer(run, 2), { path: '/usr/lib/app/lib9.so', bytes: 4096, seed: `${run}:v3` });
    const mine = await forgeImage(rig.registry, repo, 'v3-mine', { layers: [base, app3], config: { Cmd: ['sleep', '3600'] } });
    const other = await forgeImage(rig.registry, repo, 'v3-other', { layers: [base], config: { Cmd: ['true'] } });
    images.push(mine, other);
    const index = await pushIndex(rig.registryUrl, repo, 'v3', mine, other);
    await publish('3.0.0', index);
    const before = deltasCached();
    let prepared: string[] = [];
    await rollOut('delta-app@3.0.0', async () => {
      prepared = await waitFor('the proxy to hold the delta v2 → v3', async () => (deltasCached().length > before.length ? deltasCached() : undefined), { timeoutMs: 120_000 });
    });
    expect(prepared).toHaveLength(before.length + 1);
    await fleet.waitForRelease([SERIAL], 'delta-app@3.0.0');
    // The gateway asked for the same pair (its platform's image): the prepared delta served it.
    expect(deltasCached()).toEqual(prepared);
    expect((await fleet.twin(SERIAL)).reported?.bytes).toMatchObject({ full: mine.manifest.layers[1].size, delta: true });
  });
});
