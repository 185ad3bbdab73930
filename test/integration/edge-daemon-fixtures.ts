import { randomBytes, type KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { rm } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import { exportJWK } from 'jose';
import { signDeployment, type DeploymentDocument } from '../../protocol/deployment.js';
import { generateEd25519, publicKeyToRaw, verifyBytes, writeKeyPair } from '../../protocol/keys.js';
import type { Manifest, Service } from '../../manifests/model.js';
import { deviceReport, enrollProofBytes, type DeviceReport } from '../../protocol/device.js';
import { canonicalDigest } from '../../manifests/canonical.js';
import { startRegistryProxy } from '../../registry-proxy/index.js';
import { busyboxLayer, forgeImage } from '../rig/forge.js';
import type { RigInfo } from '../rig/index.js';
import { LABEL } from '../../edge-daemon/reconcile/spec.js';
import { startEdgeDaemon, type EdgeDaemon, type EdgeDaemonOptions } from '../../edge-daemon/index.js';
import { createLogger } from '../../common/log.js';
import { waitFor } from './wait.js';

/** Kept here too for the daemon tests that import their fixtures and waits together. */
export { waitFor } from './wait.js';

/**
 * The device side of the control plane's wire contract (protocol/device.ts), served over real
 * HTTP with real Ed25519 keys, so the daemon is tested end to end before and apart from the real
 * control plane: enrollment with a verified proof, long-polled signed documents with ETags, pull
 * tokens, reports validated against the schema.
 */
export interface TestControlPlane {
  url: string;
  signingKey: { privateKey: KeyObject; publicKey: KeyObject; kid: string };
  addDevice(serial: string, publicKey: KeyObject): string;
  /** Signs and serves a document for the device; returns the JWS. */
  publish(deviceId: string, doc: { sequence: number; spec: Manifest; exp?: number; secrets?: DeploymentDocument['secrets'] }, key?: { privateKey: KeyObject; kid: string }): Promise<string>;
  /** The X25519 key (base64url raw) the device proved at its last enrollment, if it sent one. */
  encryptionKey(deviceId: string): string | undefined;
  /** Serves exactly these bytes as the device's document (tampered, replayed…). */
  serveRaw(deviceId: string, jws: string): void;
  reports(deviceId: string): DeviceReport[];
  /** Answers 503 to every device call while true (an unreachable control plane). */
  setDown(down: boolean): void;
  /** Forgets every device token issued so far (as after a key rotation or a token epoch bump). */
  dropTokens(): void;
  /** How many enrollments (first or renewal) succeeded per device. */
  enrollments(deviceId: string): number;
  close(): Promise<void>;
}

async function body(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : undefined;
}

function send(res: ServerResponse, status: number, value?: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...(value === undefined ? {} : { 'content-type': 'application/json' }), ...headers });
  res.end(value === undefined ? undefined : JSON.stringify(value));
}

export async function startTestControlPlane(opts: { registryProxy: string | null }): Promise<TestControlPlane> {
  const pair = generateEd25519();
  const signingKey = { ...pair, kid: 'cp-' + randomBytes(4).toString('hex') };
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: signingKey.kid, alg: 'EdDSA', use: 'sig' };
  const devices = new Map<string, { serial: string; publicKey: KeyObject }>();
  const bySerial = new Map<string, string>();
  const challenges = new Map<string, string>();
  const tokens = new Map<string, string>();
  const documents = new Map<string, { jws: string; etag: string }>();
  const reports = new Map<string, DeviceReport[]>();
  const enrolled = new Map<string, number>();
  const encryptionKeys = new Map<string, string>();
  const changes = new EventEmitter();
  changes.setMaxListeners(100);
  let down = false;

  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (down) return send(res, 503, { error: 'down for the test' });
      if (req.method === 'POST' && url.pathname === '/v1/enroll/challenge') {
        const { serial } = (await body(req)) as { serial: string };
        const challenge = randomBytes(24).toString('base64url');
        challenges.set(serial, challenge);
        return send(res, 200, { challenge, expiresAt: new Date(Date.now() + 60_000).toISOString() });
      }
      if (req.method === 'POST' && url.pathname === '/v1/enroll') {
        const { serial, challenge, signature, encryptionKey } = (await body(req)) as { serial: string; challenge: string; signature: string; encryptionKey?: string };
        const id = bySerial.get(serial);
        const expected = challenges.get(serial);
        challenges.delete(serial);
        if (!id || expected !== challenge || !verifyBytes(devices.get(id)!.publicKey, enrollProofBytes(serial, challenge, encryptionKey), signature)) {
          return send(res, 403, { error: 'enrollment refused' });
        }
        if (encryptionKey) encryptionKeys.set(id, encryptionKey);
        const token = randomBytes(18).toString('base64url');
        tokens.set(token, id);
        enrolled.set(id, (enrolled.get(id) ?? 0) + 1);
        return send(res, 200, {
          deviceId: id,
          token,
          tokenExpiresAt: new Date(Date.now() + 3600_000).toISOString(),
          registryProxy: opts.registryProxy,
          jwks: { keys: [jwk] },
        });
      }
      const device = tokens.get((req.headers.authorization ?? '').replace(/^Bearer /, ''));
      if (!device) return send(res, 401, { error: 'no device token' });
      if (req.method === 'GET' && url.pathname === '/v1/device/desired') {
        const wait = Math.min(Number(url.searchParams.get('wait') ?? 0), 30) * 1000;
        const known = req.headers['if-none-match'];
        let doc = documents.get(device);
        if (doc && known === doc.etag && wait > 0) {
          await new Promise<void>((resolve) => {
            const t = setTimeout(done, wait);
            function done() {
              clearTimeout(t);
              changes.off(device!, done);
              req.off('close', done);
              resolve();
            }
            changes.on(device!, done);
            req.on('close', done);
          });
          doc = documents.get(device);
        }
        if (!doc) return send(res, 204);
        if (known === doc.etag) return send(res, 304, undefined, { etag: doc.etag });
        return send(res, 200, { document: doc.jws }, { etag: doc.etag });
      }
      if (req.method === 'POST' && url.pathname === '/v1/device/pull-token') {
        return send(res, 200, { token: 'anonymous-proxy', expiresAt: new Date(Date.now() + 600_000).toISOString(), registryProxy: opts.registryProxy });
      }
      if (req.method === 'POST' && url.pathname === '/v1/device/report') {
        const parsed = deviceReport.safeParse(await body(req));
        if (!parsed.success) return send(res, 400, { error: parsed.error.message });
        const list = reports.get(device) ?? [];
        const accepted = !list.length || parsed.data.sequence > list.at(-1)!.sequence;
        if (accepted) list.push(parsed.data);
        reports.set(device, list);
        return send(res, 202, { accepted });
      }
      send(res, 404, { error: 'no route' });
    })().catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { error: String(err) });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const serveRaw = (deviceId: string, jws: string) => {
    documents.set(deviceId, { jws, etag: `"${canonicalDigest(jws).slice(7, 27)}"` });
    changes.emit(deviceId);
  };
  return {
    url,
    signingKey,
    addDevice(serial, publicKey) {
      const id = 'dev-' + randomBytes(4).toString('hex');
      devices.set(id, { serial, publicKey });
      bySerial.set(serial, id);
      return id;
    },
    encryptionKey: (id) => encryptionKeys.get(id),
    async publish(deviceId, { sequence, spec, exp, secrets }, key = signingKey) {
      const now = Math.floor(Date.now() / 1000);
      const doc: DeploymentDocument = {
        device: deviceId,
        sequence,
        iat: now,
        exp: exp ?? now + 3600,
        manifest: { name: spec.name, version: spec.version, digest: canonicalDigest(spec) },
        spec,
        ...(secrets ? { secrets } : {}),
      };
      const jws = await signDeployment(doc, key);
      serveRaw(deviceId, jws);
      return jws;
    },
    serveRaw,
    reports: (id) => reports.get(id) ?? [],
    setDown(value) {
      down = value;
    },
    dropTokens: () => tokens.clear(),
    enrollments: (id) => enrolled.get(id) ?? 0,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A device as the manufacturer made it: a serial and a key file, recorded by the control plane. */
export async function makeDevice(cp: TestControlPlane, serial = 'SN-' + randomBytes(3).toString('hex')) {
  const dir = await mkdtemp(join(tmpdir(), 'berth-edge-'));
  const keyFile = join(dir, 'device.key');
  const pair = generateEd25519();
  await writeKeyPair(keyFile, pair);
  const deviceId = cp.addDevice(serial, pair.publicKey);
  return { serial, keyFile, stateDir: join(dir, 'state'), dir, deviceId, publicKeyRaw: publicKeyToRaw(pair.publicKey) };
}

export type TestDevice = Awaited<ReturnType<typeof makeDevice>>;
export type TestDaemon = Awaited<ReturnType<typeof startEdgeDaemon>>;

/**
 * A daemon in this process for `dev`, with the tests' short timers (long poll 5 s, stable after
 * 1 s, health every 250 ms, reconcile every 2 s, heartbeat 5 s); `over` sets the rest (allow,
 * secretsDir, trustKey, …) or changes a timer.
 */
export function startTestDaemon(cp: { url: string }, dev: TestDevice, dockerHost: string, over: Partial<EdgeDaemonOptions> = {}): Promise<TestDaemon> {
  return startEdgeDaemon({
    controlPlane: cp.url,
    stateDir: dev.stateDir,
    serial: dev.serial,
    key: dev.keyFile,
    dockerHost,
    log: createLogger('edge-daemon', { level: process.env.BERTH_LOG_LEVEL ?? 'warn' }),
    longPollSeconds: 5,
    stableMs: 1000,
    healthPollMs: 250,
    reconcileIntervalMs: 2000,
    heartbeatMs: 5000,
    ...over,
  });
}

/** Until `d` runs `sequence` committed, nothing in flight; a failed or rolled-back phase is named if it times out. */
export function committed(d: EdgeDaemon, sequence: number): Promise<true> {
  return waitFor(`sequence ${sequence} committed`, () => {
    const s = d.status();
    if (s.currentSequence === sequence && s.phase === 'running' && !s.inflight && !s.busy) return true;
    if (s.phase === 'failed' || s.phase === 'rolled-back') throw new Error(`${s.phase}: ${s.error}`);
    return false;
  }, 90_000);
}

/** The real registry proxy in front of the rig's registry, open to anonymous pulls (no control plane JWKS here). */
export async function startProxy(rig: RigInfo) {
  const cacheDir = await mkdtemp(join(tmpdir(), 'berth-proxy-'));
  return startRegistryProxy({ listen: '127.0.0.1:0', cacheDir, upstreams: [{ alias: 'rig', url: rig.registryUrl }], anonymous: true });
}

/** A small runnable image: busybox plus a marker file, so each `marker` is a distinct image. */
export async function forgeApp(rig: RigInfo, repository: string, marker: string) {
  return forgeImage(rig.registry, repository, marker, { layers: [busyboxLayer(), { files: { '/marker': marker } }], config: { Cmd: ['sleep', '3600'] } });
}

export function service(image: string, over: Partial<Service> = {}): Service {
  return { image, command: ['sleep', '3600'], environment: {}, networkMode: 'none', restart: 'always', volumes: [], dependsOn: {}, labels: {}, ...over };
}

/** A normalized manifest; a bare major version `N` becomes `N.0.0` (versions are semver). */
export function manifest(version: string, services: Record<string, Service>, over: Partial<Manifest> = {}): Manifest {
  return { name: 'site', version: /^\d+$/.test(version) ? `${version}.0.0` : version, services, volumes: {}, update: { strategy: 'download-then-swap', healthTimeoutMs: 20_000 }, ...over };
}

export interface SeenContainer {
  id: string;
  name: string;
  service: string;
  state: string;
  startedAt: string;
  labels: Record<string, string>;
  env: string[];
}

/** The containers of one device as the engine shows them (inspected, so StartedAt is there). */
export async function containersOf(docker: Dockerode, deviceId: string): Promise<SeenContainer[]> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL.device}=${deviceId}`] } });
  const out: SeenContainer[] = [];
  for (const c of list) {
    const info = await docker
      .getContainer(c.Id)
      .inspect()
      .catch((err: { statusCode?: number }) => {
        if (err.statusCode === 404) return undefined; // removed between list and inspect
        throw err;
      });
    if (!info) continue;
    out.push({ id: info.Id, name: info.Name.replace(/^\//, ''), service: c.Labels[LABEL.service], state: info.State.Status, startedAt: info.State.StartedAt, labels: info.Config.Labels, env: info.Config.Env });
  }
  return out.sort((a, b) => a.service.localeCompare(b.service) || a.id.localeCompare(b.id));
}

export function runningByService(list: SeenContainer[]): Record<string, SeenContainer> {
  return Object.fromEntries(list.filter((c) => c.state === 'running').map((c) => [c.service, c]));
}

/** Removes a device's containers and volumes (test cleanup; the daemon itself never removes volumes). */
export async function removeDevice(docker: Dockerode, deviceId: string): Promise<void> {
  const filters = { label: [`${LABEL.device}=${deviceId}`] };
  for (const c of await docker.listContainers({ all: true, filters })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  for (const v of (await docker.listVolumes({ filters })).Volumes ?? []) await docker.getVolume(v.Name).remove().catch(() => undefined);
}

/**
 * A unix socket in front of the rig's engine that a test can take down and bring back: the engine
 * as the daemon sees it going away and returning, without stopping the engine other tests share.
 */
export async function engineGate(engineSocket: string) {
  const dir = await mkdtemp(join(tmpdir(), 'berth-gate-'));
  const path = join(dir, 'docker.sock');
  const sockets = new Set<Socket>();
  let server: NetServer | undefined;
  return {
    dockerHost: `unix://${path}`,
    async up() {
      if (server) return;
      const s = createNetServer((client) => {
        const upstream = connect(engineSocket);
        for (const sock of [client, upstream]) {
          sockets.add(sock);
          sock.on('close', () => sockets.delete(sock));
          sock.on('error', () => undefined);
        }
        client.pipe(upstream).pipe(client);
      });
      await new Promise<void>((resolve, reject) => s.listen(path, resolve).once('error', reject));
      server = s;
    },
    async down() {
      const s = server;
      server = undefined;
      for (const sock of sockets) sock.destroy();
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
      await rm(path, { force: true });
    },
  };
}
