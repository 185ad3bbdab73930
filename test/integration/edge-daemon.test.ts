import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EdgeDaemon } from '../../edge-daemon/index.js';
import { deviceComponent, localTag } from '../../edge-daemon/download/plan.js';
import { signDeployment } from '../../protocol/deployment.js';
import { generateEd25519 } from '../../protocol/keys.js';
import { canonicalDigest } from '../../manifests/canonical.js';
import { parseImageRef } from '../../manifests/image-ref.js';
import { configHash, containerName, volumeName, LABEL } from '../../edge-daemon/reconcile/spec.js';
import { rigFromEnv } from '../rig/index.js';
import {
  containersOf,
  engineGate,
  forgeApp,
  makeDevice,
  manifest,
  removeDevice,
  runningByService,
  service,
  startProxy,
  startTestControlPlane,
  startTestDaemon,
  committed,
  waitFor,
  type TestControlPlane,
  type TestDaemon,
} from './edge-daemon-fixtures.js';

const rig = rigFromEnv();
const docker = new Docker({ socketPath: rig.dockerSocket });
let cp: TestControlPlane;
let proxy: Awaited<ReturnType<typeof startProxy>>;
const daemons: EdgeDaemon[] = [];
const devices: string[] = [];

type Device = Awaited<ReturnType<typeof makeDevice>>;
type Daemon = TestDaemon;

function start(dev: Device, dockerHost = rig.dockerHost, trustKey?: string): Promise<Daemon> {
  return startTestDaemon(cp, dev, dockerHost, { trustKey, reconcileIntervalMs: 3000 }).then((d) => {
    daemons.push(d);
    return d;
  });
}

beforeAll(async () => {
  proxy = await startProxy(rig);
  cp = await startTestControlPlane({ registryProxy: proxy.url });
});

afterAll(async () => {
  for (const d of daemons) await d.close();
  for (const id of devices) await removeDevice(docker, id);
  await cp?.close();
  await proxy?.close();
});

describe('edge daemon against the real engine, registry proxy and download channel', () => {
  let dev: Device;
  let daemon: Daemon;
  let web1: string;
  let worker1: string;
  let seq = 0;
  const volumes = { data: {} };
  const webSpec = (image: string, env: Record<string, string> = {}) =>
    service(image, { environment: env, volumes: [{ source: 'data', target: '/data', readOnly: false }], command: ['sh', '-c', 'date >> /data/boots; exec sleep 3600'] });

  beforeAll(async () => {
    dev = await makeDevice(cp);
    devices.push(dev.deviceId);
    [web1, worker1] = await Promise.all([forgeApp(rig, 'edge/web', 'web-1'), forgeApp(rig, 'edge/worker', 'worker-1')]).then((x) => x.map((i) => i.reference));
  });

  it('first install: enrolls, downloads, creates labelled containers and volume, reports running', async () => {
    const spec = manifest('1', { web: webSpec(web1), worker: service(worker1, { environment: { ROLE: 'worker' } }) }, { volumes });
    await cp.publish(dev.deviceId, { sequence: ++seq, spec });
    daemon = await start(dev);
    expect(daemon.deviceId).toBe(dev.deviceId);
    await committed(daemon, seq);

    const seen = await containersOf(docker, dev.deviceId);
    expect(seen.map((c) => [c.service, c.state])).toEqual([['web', 'running'], ['worker', 'running']]);
    for (const c of seen) {
      const svc = spec.services[c.service];
      expect(c.name).toBe(containerName(dev.deviceId, c.service, configHash(svc)));
      expect(c.labels).toMatchObject({ [LABEL.device]: dev.deviceId, [LABEL.release]: 'site@1.0.0', [LABEL.sequence]: '1', [LABEL.service]: c.service, [LABEL.configHash]: configHash(svc) });
    }
    expect(seen.find((c) => c.service === 'worker')!.env).toContain('ROLE=worker');
    const vol = await docker.getVolume(volumeName(dev.deviceId, 'data')).inspect();
    expect(vol.Labels).toMatchObject({ [LABEL.device]: dev.deviceId });

    await daemon.flushReports();
    const last = cp.reports(dev.deviceId).at(-1)!;
    expect(last).toMatchObject({ phase: 'running', running: 'site@1.0.0', desiredSequence: 1 });
    expect(last.services.web).toMatchObject({ status: 'running', containerId: seen[0].id, image: web1 });
    expect(last.services.worker).toMatchObject({ status: 'running', containerId: seen[1].id, image: worker1 });
    const seqs = cp.reports(dev.deviceId).map((r) => r.sequence);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  });

  it('an update changing one service recreates only it; the other keeps its container', async () => {
    const before = runningByService(await containersOf(docker, dev.deviceId));
    const web2 = (await forgeApp(rig, 'edge/web', 'web-2')).reference;
    await cp.publish(dev.deviceId, { sequence: ++seq, spec: manifest('2', { web: webSpec(web2), worker: service(worker1, { environment: { ROLE: 'worker' } }) }, { volumes }) });
    await committed(daemon, seq);
    const after = await containersOf(docker, dev.deviceId);
    const running = runningByService(after);
    expect(after).toHaveLength(2); // the old web container is gone after commit
    expect(running.worker.id).toBe(before.worker.id);
    expect(running.worker.startedAt).toBe(before.worker.startedAt);
    expect(running.web.id).not.toBe(before.web.id);
    expect(running.web.labels[LABEL.release]).toBe('site@2.0.0');
  });

  it('a config-only change (environment) recreates that service from the image it has', async () => {
    const before = runningByService(await containersOf(docker, dev.deviceId));
    const current = (await docker.getContainer(before.web.id).inspect()).Config.Labels[LABEL.image];
    await cp.publish(dev.deviceId, { sequence: ++seq, spec: manifest('3', { web: webSpec(current, { MODE: 'b' }), worker: service(worker1, { environment: { ROLE: 'worker' } }) }, { volumes }) });
    await committed(daemon, seq);
    const running = runningByService(await containersOf(docker, dev.deviceId));
    expect(running.web.id).not.toBe(before.web.id);
    expect(running.web.env).toContain('MODE=b');
    expect(running.worker.id).toBe(before.worker.id);
    // the named volume survived both recreations: every boot appended to the same file
    const boots = await docker.getContainer(running.web.id).exec({ Cmd: ['cat', '/data/boots'], AttachStdout: true });
    const stream = await boots.start({});
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve) => {
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve());
    });
    expect(Buffer.concat(chunks).toString('latin1').split('\n').filter((l) => /\d{4}/.test(l)).length).toBe(3);
  });

  it('a restarted daemon adopts what runs and restarts no container', async () => {
    const before = await containersOf(docker, dev.deviceId);
    await daemon.close();
    daemon = await start(dev);
    await waitFor('the document seen again', () => daemon.status().documentsSeen >= 1);
    await daemon.flushReports();
    const after = await containersOf(docker, dev.deviceId);
    expect(after.map((c) => [c.id, c.startedAt, c.state])).toEqual(before.map((c) => [c.id, c.startedAt, c.state]));
    expect(daemon.status()).toMatchObject({ phase: 'running', currentSequence: seq, inflight: false });
  });

  it('download-then-swap: every new image is in the engine before any old container stops', async () => {
    const before = runningByService(await containersOf(docker, dev.deviceId));
    const [web4, worker4] = await Promise.all([forgeApp(rig, 'edge/web', 'web-4'), forgeApp(rig, 'edge/worker', 'worker-4')]).then((x) => x.map((i) => i.reference));
    const since = Math.floor(Date.now() / 1000) - 1;
    await cp.publish(dev.deviceId, { sequence: ++seq, spec: manifest('4', { web: webSpec(web4), worker: service(worker4) }, { volumes }) });
    await committed(daemon, seq);
    const until = Math.floor(Date.now() / 1000) + 1;
    const events = await engineEvents(since, until);
    const tags = new Set([web4, worker4].map((ref) => {
      const r = parseImageRef(ref);
      return localTag(dev.deviceId, r.repository, r.digest!).ref;
    }));
    const tagged = events.filter((e) => e.Type === 'image' && e.Action === 'tag' && tags.has(e.Actor.Attributes.name));
    const oldIds = new Set([before.web.id, before.worker.id]);
    const stopped = events.filter((e) => e.Type === 'container' && oldIds.has(e.Actor.ID) && ['kill', 'stop', 'die'].includes(e.Action));
    expect(tagged.length).toBe(2);
    expect(stopped.length).toBeGreaterThan(0);
    const lastImage = Math.max(...tagged.map((e) => e.timeNano));
    const firstStop = Math.min(...stopped.map((e) => e.timeNano));
    expect(lastImage).toBeLessThan(firstStop);
    expect(deviceComponent(dev.deviceId)).toBeTruthy();
  });

  it('a failing health check is rolled back: the old release runs again, the report carries the reason and log lines', async () => {
    const before = runningByService(await containersOf(docker, dev.deviceId));
    const goodWeb = before.web.labels[LABEL.image];
    const goodWorker = before.worker.labels[LABEL.image];
    const bad = service(goodWeb, {
      command: ['sh', '-c', 'echo bad-release-says-hello; echo disk-quota-missing >&2; exec sleep 3600'],
      // exec of `false` can take over a second on a loaded machine: the test wants its exit status, not Docker's timeout.
      healthcheck: { test: ['CMD', 'false'], intervalMs: 500, timeoutMs: 10_000, retries: 1, startPeriodMs: 0 },
    });
    const badSeq = ++seq;
    await cp.publish(dev.deviceId, { sequence: badSeq, spec: manifest('5', { web: bad, worker: service(goodWorker) }, { volumes, update: { strategy: 'download-then-swap', healthTimeoutMs: 15_000 } }) });
    await waitFor('rolled back', () => daemon.status().phase === 'rolled-back' && !daemon.status().inflight && !daemon.status().busy, 90_000);
    const after = await containersOf(docker, dev.deviceId);
    const running = runningByService(after);
    expect(after).toHaveLength(2); // the bad container is removed
    expect(running.web.id).toBe(before.web.id); // the kept old container is back
    expect(running.worker.id).toBe(before.worker.id);
    expect(daemon.status()).toMatchObject({ currentSequence: badSeq - 1, lastSequence: badSeq });
    await daemon.flushReports();
    const last = cp.reports(dev.deviceId).at(-1)!;
    expect(last.phase).toBe('rolled-back');
    expect(last.running).toBe('site@4.0.0');
    expect(last.error).toContain('web');
    expect(last.error).toContain('unhealthy');
    expect(last.error).toContain('health check exited 1 with no output');
    expect(last.error).toContain('bad-release-says-hello');
    expect(last.error).toContain('disk-quota-missing');

    // The same bad document, seen again by a restarted daemon, is not applied a second time.
    await daemon.close();
    daemon = await start(dev);
    await waitFor('the bad document seen again', () => daemon.status().documentsSeen >= 1);
    expect(daemon.status()).toMatchObject({ phase: 'rolled-back', currentSequence: badSeq - 1, inflight: false });
    const again = await containersOf(docker, dev.deviceId);
    expect(again.map((c) => [c.id, c.startedAt])).toEqual(after.map((c) => [c.id, c.startedAt]));
  });

  it('a bad signature, a tampered payload, a replayed older sequence and an expired document are refused, containers untouched', async () => {
    // a good release first, so the phase to keep is "running"
    const running0 = runningByService(await containersOf(docker, dev.deviceId));
    const spec = manifest('6', { web: webSpec(running0.web.labels[LABEL.image]), worker: service(running0.worker.labels[LABEL.image]) }, { volumes });
    const good = ++seq;
    await cp.publish(dev.deviceId, { sequence: good, spec });
    await committed(daemon, good);
    const before = await containersOf(docker, dev.deviceId);
    const untouched = async () => expect((await containersOf(docker, dev.deviceId)).map((c) => [c.id, c.startedAt, c.state])).toEqual(before.map((c) => [c.id, c.startedAt, c.state]));
    // Each document is judged once; wait for the judgement of the one just served, then check its reason.
    const refused = async (seen: number, reason: string) => {
      await waitFor(`refusal ${reason}`, () => daemon.status().documentsSeen > seen);
      expect(daemon.status().error).toContain(`(${reason})`);
      expect(daemon.status()).toMatchObject({ phase: 'running', currentSequence: good });
    };
    const seen = () => daemon.status().documentsSeen;
    const other = { privateKey: generateEd25519().privateKey, kid: cp.signingKey.kid };
    const now = Math.floor(Date.now() / 1000);
    const changed = manifest('7', { web: webSpec(running0.web.labels[LABEL.image], { EVIL: '1' }), worker: service(running0.worker.labels[LABEL.image]) }, { volumes });

    let n = seen();
    await cp.publish(dev.deviceId, { sequence: ++seq, spec: changed }, other);
    await refused(n, 'bad-signature');
    await untouched();

    const valid = await signDeployment({ device: dev.deviceId, sequence: ++seq, iat: now, exp: now + 600, manifest: { name: 'site', version: '7.0.0', digest: canonicalDigest(changed) }, spec: changed }, cp.signingKey);
    const [h, p, s] = valid.split('.');
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as { spec: { services: { web: { environment: Record<string, string> } } } };
    payload.spec.services.web.environment.EVIL = '2';
    n = seen();
    cp.serveRaw(dev.deviceId, [h, Buffer.from(JSON.stringify(payload)).toString('base64url'), s].join('.'));
    await refused(n, 'bad-signature');
    await untouched();

    n = seen();
    await cp.publish(dev.deviceId, { sequence: good - 1, spec: changed });
    await refused(n, 'replayed');
    await untouched();

    n = seen();
    await cp.publish(dev.deviceId, { sequence: ++seq, spec: changed, exp: now - 10 });
    await refused(n, 'expired');
    await untouched();

    await daemon.flushReports();
    const last = cp.reports(dev.deviceId).at(-1)!;
    expect(last).toMatchObject({ phase: 'running', running: 'site@6.0.0', desiredSequence: good });
    expect(last.error).toContain('(expired)');
  });
  it('stop-then-start: the old container stops before the new image is fetched, and the release commits', async () => {
    const before = runningByService(await containersOf(docker, dev.deviceId));
    const web8 = (await forgeApp(rig, 'edge/web', 'web-8')).reference;
    const since = Math.floor(Date.now() / 1000) - 1;
    const spec = manifest('8', { web: webSpec(web8), worker: service(before.worker.labels[LABEL.image]) }, { volumes, update: { strategy: 'stop-then-start', healthTimeoutMs: 20_000 } });
    await cp.publish(dev.deviceId, { sequence: ++seq, spec });
    await committed(daemon, seq);
    const events = await engineEvents(since, Math.floor(Date.now() / 1000) + 1);
    const r = parseImageRef(web8);
    const tag = localTag(dev.deviceId, r.repository, r.digest!).ref;
    const tagged = events.filter((e) => e.Type === 'image' && e.Action === 'tag' && e.Actor.Attributes.name === tag);
    const stopped = events.filter((e) => e.Type === 'container' && e.Actor.ID === before.web.id && ['kill', 'stop', 'die'].includes(e.Action));
    expect(tagged).toHaveLength(1);
    expect(stopped.length).toBeGreaterThan(0);
    expect(Math.min(...stopped.map((e) => e.timeNano))).toBeLessThan(tagged[0].timeNano);
    const running = runningByService(await containersOf(docker, dev.deviceId));
    expect(running.web.labels[LABEL.configHash]).toBe(configHash(spec.services.web));
    expect(running.worker.id).toBe(before.worker.id); // unchanged services are not stopped, whatever the strategy
  });
  it('an image the proxy does not have: reported as failed with the image named, the running release untouched', async () => {
    const before = await containersOf(docker, dev.deviceId);
    const ghost = `${rig.registry}/edge/ghost@sha256:${'0'.repeat(64)}`;
    const failed = ++seq;
    await cp.publish(dev.deviceId, { sequence: failed, spec: manifest('9', { web: webSpec(ghost), worker: service(before.find((c) => c.service === 'worker')!.labels[LABEL.image]) }, { volumes }) });
    await waitFor('the failure', () => daemon.status().phase === 'failed' && !daemon.status().inflight && !daemon.status().busy);
    expect(daemon.status().error).toContain('edge/ghost');
    expect(daemon.status()).toMatchObject({ currentSequence: failed - 1, lastSequence: failed });
    expect((await containersOf(docker, dev.deviceId)).map((c) => [c.id, c.startedAt, c.state])).toEqual(before.map((c) => [c.id, c.startedAt, c.state]));
    await daemon.flushReports();
    const last = cp.reports(dev.deviceId).at(-1)!;
    expect(last).toMatchObject({ phase: 'failed', running: 'site@8.0.0', desiredSequence: failed });
    expect(last.services.web.status).toBe('running');
  });
});

describe('two daemons on one engine', () => {
  it('each manages only its own containers and volumes', async () => {
    const [a, b] = [await makeDevice(cp), await makeDevice(cp)];
    devices.push(a.deviceId, b.deviceId);
    const img = (await forgeApp(rig, 'edge/shared', 'shared-1')).reference;
    const spec = manifest('1', { app: service(img, { volumes: [{ source: 'data', target: '/data', readOnly: false }] }) }, { volumes: { data: {} } });
    await cp.publish(a.deviceId, { sequence: 1, spec });
    await cp.publish(b.deviceId, { sequence: 1, spec });
    const [da, db] = await Promise.all([start(a), start(b)]);
    await Promise.all([committed(da, 1), committed(db, 1)]);
    const bBefore = await containersOf(docker, b.deviceId);
    const aBefore = await containersOf(docker, a.deviceId);
    expect(bBefore).toHaveLength(1);
    expect(aBefore).toHaveLength(1);
    expect(aBefore[0].name).not.toBe(bBefore[0].name);

    // A moves on (its app recreated, a service dropped later): B's container and volume are untouched.
    await cp.publish(a.deviceId, { sequence: 2, spec: manifest('2', { app: service(img, { environment: { V: '2' }, volumes: spec.services.app.volumes }) }, { volumes: { data: {} } }) });
    await committed(da, 2);
    await cp.publish(a.deviceId, { sequence: 3, spec: manifest('3', {}, { volumes: { data: {} } }) });
    await committed(da, 3);
    expect(await containersOf(docker, a.deviceId)).toEqual([]);
    const bAfter = await containersOf(docker, b.deviceId);
    expect(bAfter.map((c) => [c.id, c.startedAt, c.state])).toEqual(bBefore.map((c) => [c.id, c.startedAt, c.state]));
    await docker.getVolume(volumeName(b.deviceId, 'data')).inspect();
    await docker.getVolume(volumeName(a.deviceId, 'data')).inspect(); // an update never removes a volume
  });
});

describe('--trust-key', () => {
  it('overrides the pinned JWKS: only documents signed with that key are applied', async () => {
    const dev = await makeDevice(cp);
    devices.push(dev.deviceId);
    const operatorKey = generateEd25519();
    const keyFile = join(dev.dir, 'trust.pem');
    await writeFile(keyFile, operatorKey.publicKey.export({ format: 'pem', type: 'spki' }) as string);
    const empty = manifest('1', {});
    await cp.publish(dev.deviceId, { sequence: 1, spec: empty }); // signed by the control plane's own key
    const d = await start(dev, rig.dockerHost, keyFile);
    await waitFor('the document judged', () => d.status().documentsSeen >= 1);
    expect(d.status().error).toContain('(bad-signature)');
    expect(d.status().currentSequence).toBeNull();
    await cp.publish(dev.deviceId, { sequence: 2, spec: manifest('2', {}) }, { privateKey: operatorKey.privateKey, kid: 'operator' });
    await committed(d, 2);
  });
});

describe('control plane unreachable, token refused', () => {
  it('keeps the release running while offline, queues reports and delivers them in order; renews a refused token', async () => {
    const dev = await makeDevice(cp);
    devices.push(dev.deviceId);
    const img = (await forgeApp(rig, 'edge/offline', 'offline-1')).reference;
    await cp.publish(dev.deviceId, { sequence: 1, spec: manifest('1', { app: service(img) }) });
    const d = await start(dev);
    await committed(d, 1);
    await d.flushReports();
    const before = await containersOf(docker, dev.deviceId);
    const delivered = cp.reports(dev.deviceId).length;

    cp.setDown(true);
    await waitFor('reports queued while offline', () => d.status().queuedReports >= 2, 30_000);
    expect(d.status().online).toBe(false);
    expect(d.status()).toMatchObject({ phase: 'running', currentSequence: 1 });
    expect((await containersOf(docker, dev.deviceId)).map((c) => [c.id, c.startedAt])).toEqual(before.map((c) => [c.id, c.startedAt]));
    cp.setDown(false);
    await waitFor('the queue delivered', () => d.status().queuedReports === 0, 60_000);
    const all = cp.reports(dev.deviceId);
    expect(all.length).toBeGreaterThanOrEqual(delivered + 2);
    // in order and none lost: the sequences the device used are contiguous
    const seqs = all.map((r) => r.sequence);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0] + i));

    // The control plane stops accepting the token: the daemon proves its key again and carries on.
    const enrollments = cp.enrollments(dev.deviceId);
    cp.dropTokens();
    await cp.publish(dev.deviceId, { sequence: 2, spec: manifest('2', { app: service(img, { environment: { T: '2' } }) }) });
    await committed(d, 2);
    await d.flushReports();
    expect(cp.enrollments(dev.deviceId)).toBeGreaterThan(enrollments);
    expect(cp.reports(dev.deviceId).at(-1)).toMatchObject({ phase: 'running', running: 'site@2.0.0' });
  });
});

describe('Docker engine down', () => {
  it('is reported with a clear reason and the release is applied once the engine is back', async () => {
    const gate = await engineGate(rig.dockerSocket);
    const dev = await makeDevice(cp);
    devices.push(dev.deviceId);
    const img = (await forgeApp(rig, 'edge/gated', 'gated-1')).reference;
    await cp.publish(dev.deviceId, { sequence: 1, spec: manifest('1', { app: service(img) }) });
    const d = await start(dev, gate.dockerHost);
    await waitFor('the failure reported', () => d.status().phase === 'failed');
    expect(d.status().error).toContain(`Docker engine unreachable at ${gate.dockerHost}`);
    await d.flushReports();
    expect(cp.reports(dev.deviceId).at(-1)).toMatchObject({ phase: 'failed', running: null });
    expect(cp.reports(dev.deviceId).at(-1)!.error).toContain('Docker engine unreachable');

    await gate.up();
    await committed(d, 1);
    expect(Object.keys(runningByService(await containersOf(docker, dev.deviceId)))).toEqual(['app']);

    // The engine goes away under a running release: nothing is lost, the daemon reports and carries on.
    await gate.down();
    await waitFor('the outage noticed', () => d.status().error?.includes('Docker engine unreachable'), 30_000);
    expect(d.status()).toMatchObject({ phase: 'running', currentSequence: 1 });
    await gate.up();
    await waitFor('the outage over', () => d.status().error === undefined, 30_000);
    await cp.publish(dev.deviceId, { sequence: 2, spec: manifest('2', { app: service(img, { environment: { AFTER: 'outage' } }) }) });
    await committed(d, 2);
    expect(runningByService(await containersOf(docker, dev.deviceId)).app.env).toContain('AFTER=outage');
    await gate.down();
  });
});

interface EngineEvent {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  timeNano: number;
}

async function engineEvents(since: number, until: number): Promise<EngineEvent[]> {
  const stream = (await docker.getEvents({ since, until })) as NodeJS.ReadableStream;
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks)
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as EngineEvent);
}
