import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { startEdgeDaemon, type EdgeDaemon } from '../../edge-daemon/index.js';
import { generateEd25519, publicKeyToRaw, writeKeyPair } from '../../protocol/keys.js';
import { forgeImage } from '../rig/forge.js';
import { rigFromEnv } from '../rig/index.js';
import { call } from './control-plane-support.js';
import { waitFor } from './edge-daemon-fixtures.js';
import { capturedLog } from './security-support.js';

const rig = rigFromEnv();

/**
 * Finding 3: a gateway enrolled before a key rotation refuses the next document (its JWKS lacks the
 * new key). Before the fix it then kept its ETag, was answered 304 and never looked again, even
 * after a renewal brought the new key: stranded until a new sequence or a restart.
 */
describe('finding 3: a key rotation does not strand a gateway', () => {
  let dir: string;
  let cp: RunningControlPlane;
  let daemon: EdgeDaemon | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-sec03-'));
    cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'cp', 'berth.db')}`, log: createLogger('control-plane', { level: 'silent' }) });
  });
  afterAll(async () => {
    await daemon?.close();
    await cp?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses the document signed by the new key, renews onto it and fetches the document again', async () => {
    const admin = cp.adminToken as string;
    const image = await forgeImage(rig.registry, `sec03-${process.pid}`, '1', { layers: [{ files: { '/a.txt': 'a\n' } }], config: { Cmd: ['/bin/true'] } });
    for (const version of ['1.0.0', '1.0.1']) {
      const source = `name: sec03\nversion: ${version}\nservices:\n  a:\n    image: ${image.reference}\n`;
      expect((await call(cp.url, 'POST', '/v1/manifests', { token: admin, json: { source, filename: 'sec03.yaml' } })).status).toBe(201);
    }
    const serial = 'SEC03-GW';
    const pair = generateEd25519();
    const keyFile = join(dir, 'device.key');
    await writeKeyPair(keyFile, pair);
    expect((await call(cp.url, 'POST', '/v1/devices/import', { token: admin, text: `serial,public_key,labels\n${serial},${publicKeyToRaw(pair.publicKey)},\n`, type: 'text/csv' })).status).toBe(200);
    expect((await call(cp.url, 'POST', `/v1/devices/${serial}/assign`, { token: admin, json: { manifest: 'sec03@1.0.0' } })).body).toMatchObject({ sequence: 1 });

    const { log, lines } = capturedLog();
    daemon = await startEdgeDaemon({
      controlPlane: cp.url,
      stateDir: join(dir, 'state'),
      serial,
      key: keyFile,
      dockerHost: rig.dockerHost,
      log,
      longPollSeconds: 1,
      reconcileIntervalMs: 60_000,
    });
    const d = daemon;
    await waitFor('sequence 1 seen', () => d.status().seenSequence === 1);

    // Rotation: documents are signed by the new key from now on; the gateway's token (old key) stays valid.
    expect((await call(cp.url, 'POST', '/v1/keys/rotate', { token: admin })).status).toBe(200);
    expect((await call(cp.url, 'POST', `/v1/devices/${serial}/assign`, { token: admin, json: { manifest: 'sec03@1.0.1' } })).body).toMatchObject({ sequence: 2 });
    // Recovered without a restart and without a new sequence…
    await waitFor('sequence 2 seen', () => d.status().seenSequence === 2, 30_000);
    // …after refusing it first: the gateway's JWKS was pinned before the rotation.
    expect(lines.filter((l) => l.msg === 'deployment document refused' && l.reason === 'unknown-key')).toHaveLength(1);
  });
});
