import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCeiling, serviceBeyondCeiling, withinCeiling } from '../../edge-daemon/reconcile/ceiling.js';
import type { ReadDocument } from '../../edge-daemon/policy/accept.js';
import type { Manifest, Service } from '../../manifests/model.js';

const plain: Service = { image: 'registry.example.com/a@sha256:' + 'a'.repeat(64), environment: {}, networkMode: 'none', restart: 'no', volumes: [], dependsOn: {}, labels: {} };
const zigbee: Service = { ...plain, devices: [{ source: '/dev/ttyUSB0', target: '/dev/ttyUSB0', permissions: 'rwm' }], groupAdd: ['dialout'], capAdd: ['NET_ADMIN'] };
const spec = (services: Record<string, Service>): Manifest => ({ name: 'hub', version: '1.0.0', services, volumes: {}, update: { strategy: 'download-then-swap', healthTimeoutMs: 1000 } });
const valid = (services: Record<string, Service>): ReadDocument => ({ kind: 'valid', release: { sequence: 3, name: 'hub', version: '1.0.0', digest: 'sha256:' + 'b'.repeat(64), spec: spec(services) } });

async function ceilingFile(text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-ceiling-'));
  const file = join(dir, 'allow');
  await writeFile(file, text);
  return file;
}

describe('the gateway ceiling (--allow FILE)', () => {
  it('reads the file: comments, blank lines, one KEY=VALUE[,VALUE…] per line', async () => {
    const file = await ceilingFile('# installed by acme\n\ndevices=/dev/ttyUSB*\ngroup_add=dialout\n');
    expect(await loadCeiling(file)).toEqual({ devices: ['/dev/ttyUSB*'], group_add: ['dialout'] });
  });

  it('a bad file stops the daemon with the line and what is wrong', async () => {
    const file = await ceilingFile('devices=/dev/ttyUSB*\ncap_add=NET_ADMINN\n');
    await expect(loadCeiling(file)).rejects.toThrow(`--allow ${file}: line 2: cap_add=NET_ADMINN: "NET_ADMINN" is not a Linux capability`);
    await expect(loadCeiling(join(tmpdir(), 'no-such-ceiling'))).rejects.toThrow(/cannot read: ENOENT/);
  });

  it('a document within the ceiling passes; one beyond it is refused naming each privilege and service', async () => {
    const ceiling = await loadCeiling(await ceilingFile('devices=/dev/ttyUSB*\ngroup_add=dialout\n'));
    expect(withinCeiling(valid({ a: plain }), ceiling)).toEqual(valid({ a: plain }));
    expect(withinCeiling(valid({ a: zigbee }), ceiling)).toEqual({
      kind: 'invalid',
      reason: 'beyond-ceiling',
      message: "deployment document refused (beyond-ceiling): hub@1.0.0 asks for privileges this gateway's --allow file does not grant: cap_add=NET_ADMIN (a)",
    });
    // A key missing from the file allows nothing of its kind; no file, no ceiling.
    expect(withinCeiling(valid({ a: zigbee }), {}).kind).toBe('invalid');
    expect(withinCeiling(valid({ a: zigbee }), undefined).kind).toBe('valid');
  });

  it('the executor refuses to create a container beyond it', () => {
    expect(serviceBeyondCeiling('a', zigbee, { devices: ['/dev/**'] })).toBe("service a asks for privileges this gateway's --allow file does not grant: cap_add=NET_ADMIN (a), group_add=dialout (a)");
    expect(serviceBeyondCeiling('a', plain, {})).toBeUndefined();
  });
});
