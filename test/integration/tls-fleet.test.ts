import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Docker from 'dockerode';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Campaign } from '../../cli/client.js';
import { createLogger } from '../../common/log.js';
import { loadTrust } from '../../common/tls-trust.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { startEdgeDaemon, type EdgeDaemon } from '../../edge-daemon/index.js';
import { writeKeyPair } from '../../protocol/keys.js';
import { startRegistryProxy, type RunningProxy } from '../../registry-proxy/index.js';
import { busyboxLayer, forgeImage } from '../rig/forge.js';
import { freePort, rigFromEnv } from '../rig/index.js';
import { makePrivateCa, type PrivateCa } from '../rig/private-ca.js';
import { removeDevice, waitFor } from './edge-daemon-fixtures.js';
import { runCaptured } from './cli-support.js';

/**
 * Every hop over HTTPS with a fleet's private CA made by `openssl` (issue 18): the CLI (apply,
 * campaign create) and a gateway (enrollment, control channel, downloads through the proxy) trust
 * the CA with --ca-file; the control plane and the proxy reach each other with theirs. Clients
 * that trust another CA are refused, in words that say so.
 */

const rig = rigFromEnv();
const docker = new Docker({ socketPath: rig.dockerSocket });
const ADMIN = 'berth_' + randomBytes(32).toString('base64url');
let dir = '';
let ca: PrivateCa;
let other: PrivateCa;
let cp: RunningControlPlane;
let proxy: RunningProxy;
let image = '';
let daemon: EdgeDaemon | undefined;

const quiet = () => createLogger('tls-fleet', { level: process.env.BERTH_LOG_LEVEL ?? 'silent' });

async function cli(argv: string[], caFile = ca.caFile) {
  return runCaptured(argv, { BERTH_SERVER: cp.url, BERTH_TOKEN: ADMIN, BERTH_CA_FILE: caFile, HOME: dir, XDG_CONFIG_HOME: join(dir, 'cli'), NO_COLOR: '1' });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-tls-fleet-'));
  ca = await makePrivateCa(dir, 'fleet');
  other = await makePrivateCa(dir, 'other');
  image = (await forgeImage(rig.registry, `tls-fleet/app-${process.pid}`, 'v1', { layers: [busyboxLayer()], config: { Cmd: ['sleep', '3600'] } })).tagReference;
  const [cpPort, proxyPort] = [await freePort(), await freePort()];
  const trust = await loadTrust(ca.caFile);
  proxy = await startRegistryProxy({
    listen: `127.0.0.1:${proxyPort}`,
    tls: await ca.issue('proxy'),
    cacheDir: join(dir, 'proxy-cache'),
    upstreams: [{ alias: 'local', url: rig.registryUrl }],
    controlPlane: `https://127.0.0.1:${cpPort}`,
    controlPlaneTrust: trust,
    log: quiet(),
  });
  cp = await startControlPlane({
    listen: `127.0.0.1:${cpPort}`,
    tls: await ca.issue('cp'),
    caFile: ca.caFile,
    db: `file:${join(dir, 'cp', 'cp.db')}`,
    registryProxy: proxy.url,
    adminToken: ADMIN,
    log: quiet(),
  });
}, 120_000);

afterAll(async () => {
  await daemon?.close();
  if (daemon) await removeDevice(docker, daemon.deviceId);
  await cp?.close();
  await proxy?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('every hop over HTTPS with a private CA', { timeout: 180_000 }, () => {
  it('the CLI with --ca-file imports, applies (the control plane resolves the tag through the HTTPS proxy) and creates a campaign', async () => {
    expect(cp.url).toMatch(/^https:/);
    expect(proxy.url).toMatch(/^https:/);
    await mkdir(join(dir, 'gw'), { recursive: true });
    const publicKey = await writeKeyPair(join(dir, 'gw', 'device.key'));
    await writeFile(join(dir, 'records.csv'), `serial,public_key,labels\nTLS-GW-1,${publicKey},site=tls\n`);
    const imported = await cli(['devices', 'import', join(dir, 'records.csv')]);
    expect(imported.code, imported.stderr).toBe(0);
    await writeFile(join(dir, 'app.yaml'), `name: tls-app\nversion: 1.0.0\nservices:\n  app: { image: "${image}", network_mode: none, restart: unless-stopped }\nx-berth: { update: { health_timeout: 30s } }\n`);
    const applied = await cli(['apply', '-f', join(dir, 'app.yaml')]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toMatch(/@sha256:[0-9a-f]{64}/);
  });

  it('a gateway with --ca-file enrolls, downloads through the HTTPS proxy and runs the release', async () => {
    daemon = await startEdgeDaemon({
      controlPlane: cp.url,
      caFile: ca.caFile,
      stateDir: join(dir, 'gw', 'state'),
      serial: 'TLS-GW-1',
      key: join(dir, 'gw', 'device.key'),
      dockerHost: rig.dockerHost,
      log: quiet(),
      longPollSeconds: 5,
      stableMs: 1000,
      healthPollMs: 250,
      heartbeatMs: 5000,
    });
    const created = await cli(['campaign', 'create', '--manifest', 'tls-app@1.0.0', '--selector', 'site=tls', '--waves', '100%', '--start', '--output', 'json']);
    expect(created.code, created.stderr).toBe(0);
    const id = (JSON.parse(created.stdout) as Campaign).id;
    const done = await waitFor('the campaign to end', async () => {
      const s = await cli(['campaign', 'status', id, '--output', 'json']);
      const c = JSON.parse(s.stdout) as Campaign;
      return ['completed', 'failed', 'aborted', 'paused'].includes(c.status) ? c : undefined;
    }, 120_000);
    expect(done.status, JSON.stringify(done.failing)).toBe('completed');
    expect(daemon.status()).toMatchObject({ running: 'tls-app@1.0.0', phase: 'running' });
  });

  it('the CLI trusting another CA is refused, saying the certificate is not from that CA', async () => {
    const r = await cli(['manifests', 'list'], other.caFile);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`the TLS certificate of ${new URL(cp.url).host} is not signed by a CA this client trusts (UNABLE_TO_VERIFY_LEAF_SIGNATURE); it is not from the CA in ${other.caFile}`);
    const none = await cli(['manifests', 'list'], '');
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/is not signed by a CA this client trusts \(.+\); pass the fleet's CA with --ca-file/);
  });

  it('a gateway trusting another CA does not enroll, and logs why', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, new Writable({ write: (c, _e, done) => void (lines.push(String(c)), done()) }));
    await mkdir(join(dir, 'gw2'), { recursive: true });
    await writeKeyPair(join(dir, 'gw2', 'device.key'));
    const stop = new AbortController();
    const started = startEdgeDaemon({ controlPlane: cp.url, caFile: other.caFile, stateDir: join(dir, 'gw2', 'state'), serial: 'TLS-GW-2', key: join(dir, 'gw2', 'device.key'), dockerHost: rig.dockerHost, log, signal: stop.signal });
    const failed = started.then(() => null, (e: unknown) => e);
    await waitFor('the enrollment failure logged', () => lines.find((l) => l.includes('enrollment failed')));
    stop.abort();
    expect(await failed).toBeInstanceOf(Error);
    const line = JSON.parse(lines.find((l) => l.includes('enrollment failed'))!) as { err: string };
    expect(line.err).toContain(`the TLS certificate of ${new URL(cp.url).host} is not signed by a CA this client trusts (UNABLE_TO_VERIFY_LEAF_SIGNATURE); it is not from the CA in ${other.caFile}`);
  });
});
