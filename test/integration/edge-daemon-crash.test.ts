import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, readFileSync, closeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configHash, volumeName, LABEL } from '../../edge-daemon/reconcile/spec.js';
import type { Journal } from '../../edge-daemon/state.js';
import type { Service } from '../../manifests/model.js';
import { rigFromEnv } from '../rig/index.js';
import {
  containersOf,
  forgeApp,
  makeDevice,
  manifest,
  removeDevice,
  runningByService,
  service,
  startProxy,
  startTestControlPlane,
  waitFor,
  type TestControlPlane,
} from './edge-daemon-fixtures.js';

/**
 * Crash safety of the compiled daemon: `kill -9` of a real `node dist/bin/berth.js edge-daemon`
 * process in the middle of a swap and in the middle of a rollback; the restarted process must end
 * with exactly one release running, old or new, and the volume kept.
 */
const rig = rigFromEnv();
const docker = new Docker({ socketPath: rig.dockerSocket });
const ROOT = resolve(import.meta.dirname, '../..');
const BIN = join(ROOT, 'dist/bin/berth.js');
let cp: TestControlPlane;
let proxy: Awaited<ReturnType<typeof startProxy>>;
let dev: Awaited<ReturnType<typeof makeDevice>>;
let child: ChildProcess | undefined;

function spawnDaemon(): ChildProcess {
  const out = openSync(join(dev.dir, 'daemon.log'), 'a');
  const p = spawn(process.execPath, [BIN, 'edge-daemon'], {
    cwd: ROOT,
    // Flags through the environment, as a systemd unit would give them.
    env: {
      ...process.env,
      BERTH_DAEMON_CONTROL_PLANE: cp.url,
      BERTH_DAEMON_STATE_DIR: dev.stateDir,
      BERTH_DAEMON_SERIAL: dev.serial,
      BERTH_DAEMON_KEY: dev.keyFile,
      BERTH_DAEMON_DOCKER_HOST: rig.dockerHost,
      BERTH_DAEMON_REGISTRY_PROXY: proxy.url,
      BERTH_LOG_LEVEL: 'debug',
    },
    stdio: ['ignore', out, out],
  });
  closeSync(out);
  return p;
}

async function kill9(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await gone;
}

function journal(): Journal | undefined {
  try {
    return JSON.parse(readFileSync(join(dev.stateDir, 'release.json'), 'utf8')) as Journal;
  } catch {
    return undefined;
  }
}

/** Slow to become healthy, so the swap has a window to be killed in. */
const slowHealthy = (image: string, tag: string): Service =>
  service(image, {
    environment: { TAG: tag },
    volumes: [{ source: 'data', target: '/data', readOnly: false }],
    command: ['sh', '-c', 'date >> /data/boots; sleep 3; touch /tmp/ready; exec sleep 3600'],
    healthcheck: { test: ['CMD-SHELL', 'test -f /tmp/ready'], intervalMs: 500, timeoutMs: 10_000, retries: 3, startPeriodMs: 10_000 },
  });

beforeAll(async () => {
  // The test runs what ships: the compiled JS on plain node (built once by the rig's global setup).
  if (!existsSync(BIN)) throw new Error(`${BIN} was not built`);
  proxy = await startProxy(rig);
  cp = await startTestControlPlane({ registryProxy: null });
  dev = await makeDevice(cp);
}, 300_000);

afterAll(async () => {
  if (child) await kill9(child);
  if (dev) await removeDevice(docker, dev.deviceId);
  await cp?.close();
  await proxy?.close();
});

describe('kill -9 of the daemon process', () => {
  let v2: Record<string, Service>;

  it('during a swap: the restarted daemon converges on one release with the volume kept', async () => {
    const [web1, worker1, web2, worker2] = (
      await Promise.all([forgeApp(rig, 'crash/web', 'web-1'), forgeApp(rig, 'crash/worker', 'worker-1'), forgeApp(rig, 'crash/web', 'web-2'), forgeApp(rig, 'crash/worker', 'worker-2')])
    ).map((i) => i.reference);
    await cp.publish(dev.deviceId, { sequence: 1, spec: manifest('1', { web: slowHealthy(web1, 'v1'), worker: slowHealthy(worker1, 'v1') }, { volumes: { data: {} } }) });
    child = spawnDaemon();
    await waitFor('release 1 committed', () => journal()?.current?.sequence === 1 && !journal()?.inflight, 90_000);
    const volumeBefore = (await docker.getVolume(volumeName(dev.deviceId, 'data')).inspect()) as Docker.VolumeInspectInfo & { CreatedAt: string };

    v2 = { web: slowHealthy(web2, 'v2'), worker: slowHealthy(worker2, 'v2') };
    await cp.publish(dev.deviceId, { sequence: 2, spec: manifest('2', v2, { volumes: { data: {} } }) });
    // Kill between the swap's first start and its health gate: the engine then holds a mix.
    await waitFor('the swap under way', () => {
      const j = journal();
      return j?.inflight?.target.sequence === 2 && ['start', 'stop', 'wait-healthy'].includes(j.inflight.kind);
    }, 90_000);
    await kill9(child);
    expect(journal()?.inflight?.target.sequence).toBe(2);
    expect(journal()?.current?.sequence).toBe(1);

    child = spawnDaemon();
    await waitFor('release 2 committed after restart', () => journal()?.current?.sequence === 2 && !journal()?.inflight, 120_000);
    const seen = await waitFor('old containers cleaned up', async () => {
      const list = await containersOf(docker, dev.deviceId);
      return list.length === 2 ? list : undefined;
    });
    const running = runningByService(seen);
    expect(Object.keys(running).sort()).toEqual(['web', 'worker']);
    for (const [name, spec] of Object.entries(v2)) expect(running[name].labels[LABEL.configHash]).toBe(configHash(spec));
    const volumeAfter = (await docker.getVolume(volumeName(dev.deviceId, 'data')).inspect()) as Docker.VolumeInspectInfo & { CreatedAt: string };
    expect(volumeAfter.CreatedAt).toBe(volumeBefore.CreatedAt);
    expect(journal()?.previous?.sequence).toBe(1);
  });

  it('during a rollback: the restarted daemon finishes it and the previous release runs', async () => {
    const before = runningByService(await containersOf(docker, dev.deviceId));
    const bad = { ...v2, web: service(v2.web.image, { command: ['sh', '-c', 'echo going-wrong; exec sleep 3600'], healthcheck: { test: ['CMD', 'false'], intervalMs: 500, timeoutMs: 1000, retries: 1, startPeriodMs: 0 }, volumes: v2.web.volumes }) };
    await cp.publish(dev.deviceId, { sequence: 3, spec: manifest('3', bad, { volumes: { data: {} } }) });
    await waitFor('the rollback under way', () => journal()?.inflight?.rollingBack === true, 90_000);
    await kill9(child!);
    expect(journal()?.inflight?.rollingBack).toBe(true);

    child = spawnDaemon();
    await waitFor('rollback finished after restart', () => !journal()?.inflight && journal()?.failure?.sequence === 3, 120_000);
    const seen = await waitFor('the bad container removed', async () => {
      const list = await containersOf(docker, dev.deviceId);
      return list.length === 2 && list.every((c) => c.state === 'running') ? list : undefined;
    });
    const running = runningByService(seen);
    expect(running.web.id).toBe(before.web.id);
    expect(running.worker.id).toBe(before.worker.id);
    expect(journal()).toMatchObject({ current: { sequence: 2 }, lastSequence: 3, failure: { sequence: 3, phase: 'rolled-back' } });
  });
});
