import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { MAX_MANIFEST_ENTRIES } from '../../manifests/yaml-limits.js';
import { parseManifest, formatIssue } from '../../manifests/parse.js';
import { forgeImage, type ForgedImage } from '../rig/forge.js';
import { rigFromEnv } from '../rig/index.js';
import { call } from './control-plane-support.js';

const rig = rigFromEnv();

/** A manifest whose one service has `n` environment variables. */
function manifestWith(image: string, version: string, n: number): string {
  const env = Array.from({ length: n }, (_, i) => `      K${i}: v${i}`).join('\n');
  return `name: sec05\nversion: ${version}\nservices:\n  a:\n    image: ${image}\n    environment:\n${env}\n`;
}

/**
 * Finding 5: the YAML library's duplicate-key check compares every key with every other (40,000
 * keys held the event loop for 28.7 s). Now one pass with a set per map, and a cap on keys and list
 * items: refused with a clear 422 (unparsed when the file cannot be under the cap). How long the
 * loop is held is measured by `npm run bench -- manifest-keys`, not here.
 */
describe('finding 5: one manifest cannot freeze the control plane', () => {
  let dir: string;
  let cp: RunningControlPlane;
  let image: ForgedImage;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-sec05-'));
    cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'cp', 'berth.db')}`, log: createLogger('control-plane', { level: 'silent' }) });
    image = await forgeImage(rig.registry, `sec05-${process.pid}`, '1', { layers: [{ files: { '/a.txt': 'a\n' } }], config: { Cmd: ['/bin/true'] } });
  });
  afterAll(async () => {
    await cp?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const publish = (source: string) => call(cp.url, 'POST', '/v1/manifests?filename=sec05.yaml', { token: cp.adminToken, text: source, type: 'application/yaml' });

  it('refuses more keys than the cap with 422 naming the cap, parsed or not', async () => {
    for (const n of [MAX_MANIFEST_ENTRIES + 10, 40_000]) {
      const r = await publish(manifestWith(image.reference, '1.0.0', n));
      expect(r.status, `${n} keys`).toBe(422);
      expect(r.body.error.code).toBe('invalid-manifest');
      expect(r.body.error.message).toContain(`at most ${MAX_MANIFEST_ENTRIES}`);
    }
    expect((await call(cp.url, 'GET', '/healthz')).status).toBe(200);
  });

  it('publishes a big manifest under the cap, and still finds a duplicate key at its line', async () => {
    const big = manifestWith(image.reference, '2.0.0', MAX_MANIFEST_ENTRIES - 20);
    const r = await publish(big);
    expect(r.status, JSON.stringify(r.body).slice(0, 300)).toBe(201);
    expect(Object.keys(r.body.spec.services.a.environment)).toHaveLength(MAX_MANIFEST_ENTRIES - 20);

    const dup = `${manifestWith(image.reference, '2.0.1', 1500)}      K1234: again\n`;
    const refused = await publish(dup);
    expect(refused.status).toBe(422);
    expect(refused.body.errors.map(formatIssue)).toEqual([`sec05.yaml:${7 + 1500}:7: YAML: Map keys must be unique`]);
    // Every map, also in flow style and nested, as the YAML library checked it.
    const flow = parseManifest('name: x\nversion: 1.0.0\nservices: { a: { image: i, labels: { l: 1, m: 2, l: 3 } } }\n', 'f.yaml');
    expect(flow.ok ? [] : flow.errors.map(formatIssue)).toEqual(['f.yaml:3:50: YAML: Map keys must be unique']);
  });
});
