/**
 * A whole Berth installation on one machine, for the end-to-end tests and for `npm run demo`: the
 * control plane (embedded database), the registry proxy in front of a local registry, and gateways
 * (edge daemons sharing one Docker engine), plus the operator CLI run in-process against them.
 * Test tooling imported by the demo from dist, so no vitest in here.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import type { Campaign, DeviceSummary, Twin } from '../../cli/client.js';
import { createLogger, type Logger } from '../../common/log.js';
import { startControlPlane } from '../../control-plane/index.js';
import { startEdgeDaemon } from '../../edge-daemon/index.js';
import { StateDir } from '../../edge-daemon/state.js';
import { LABEL } from '../../edge-daemon/reconcile/spec.js';
import { writeKeyPair } from '../../protocol/keys.js';
import { startRegistryProxy } from '../../registry-proxy/index.js';
import { busyboxLayer, forgeImage, type ForgedImage } from '../rig/forge.js';
import { freePort } from '../rig/index.js';
import { runCaptured } from './cli-support.js';
import { answers, spawnService } from './fleet-process.js';

import { waitFor } from './wait.js';

/** Kept here too for the tests that drive a fleet and wait on it from one import. */
export { waitFor } from './wait.js';

export interface GatewaySpec {
  serial: string;
  labels: Record<string, string>;
}

export interface FleetOptions {
  /**
   * The engine every gateway shares (`dockerHost`: unix:///…/docker.sock) and the local registry the
   * demo images live in (`registryUrl`); the test rig's info fits as it is.
   */
  engine: { dockerHost: string; registryUrl: string };
  /** Everything the fleet writes: database, proxy cache, device keys and state, logs. */
  dir: string;
  gateways: GatewaySpec[];
  /** A device not heard from for this long shows offline (in-process default 15 s, gateways heartbeat every 5 s). */
  offlineAfterMs?: number;
  /** The gateways' tmpfs for secret files (`--secrets-dir`); default the daemon's (/run/berth). */
  secretsDir?: string;
  /**
   * Run every service as a child process (`node dist/bin/berth.js …`, logs in one file each), as
   * an operator would; default: in this process (tests: no build needed, faster restarts).
   */
  processes?: { node: string; berth: string };
}

/** A running service, in-process or a child process (then with its pid and command line). */
export interface RunningService {
  name: string;
  pid: number | null;
  command: string | null;
  logFile: string;
  stop(): Promise<void>;
}

export interface Gateway extends GatewaySpec {
  keyFile: string;
  stateDir: string;
  publicKey: string;
  /** Set once enrolled (the first start). */
  deviceId: string | null;
  /** The gateway's daemon while it runs; null while the gateway is offline. */
  daemon: RunningService | null;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** What runs on a gateway, as the engine says: one entry per container the daemon manages. */
export interface GatewayContainer {
  service: string;
  release: string;
  /** The image id (config digest) the container runs. */
  imageId: string;
  state: string;
  /** healthy, unhealthy, starting, or none when the container has no health check. */
  health: string;
  name: string;
}

const UPSTREAM_ALIAS = 'local';

export class Fleet {
  readonly gateways = new Map<string, Gateway>();
  readonly docker: Docker;
  readonly adminToken = 'berth_' + randomBytes(32).toString('base64url');
  readonly recordsFile: string;
  readonly logFile: string;
  private controlPlane: RunningService | null = null;
  private proxy: RunningService | null = null;
  private cpPort = 0;
  private proxyPort = 0;
  private readonly log: Logger;

  private constructor(readonly opts: FleetOptions) {
    this.docker = new Docker({ socketPath: opts.engine.dockerHost.replace(/^unix:\/\//, '') });
    this.recordsFile = join(opts.dir, 'manufacturing-records.csv');
    this.logFile = join(opts.dir, 'logs', 'services.log');
    // One file for every service (pino/file in one worker thread): the story goes to the
    // terminal, the services' JSON lines go here.
    this.log = createLogger('fleet', { transport: { target: 'pino/file', options: { destination: this.logFile, mkdir: true } } });
  }

  /** Starts the registry proxy and the control plane, and makes the gateways' keys and records. */
  static async start(opts: FleetOptions): Promise<Fleet> {
    await mkdir(join(opts.dir, 'logs'), { recursive: true });
    const fleet = new Fleet(opts);
    fleet.cpPort = await freePort();
    fleet.proxyPort = await freePort();
    await fleet.startProxy();
    await fleet.startControlPlane();
    const rows = ['serial,public_key,labels'];
    for (const g of opts.gateways) {
      const dir = join(opts.dir, 'gateways', g.serial);
      await mkdir(dir, { recursive: true });
      const keyFile = join(dir, 'device.key');
      const publicKey = await writeKeyPair(keyFile);
      fleet.gateways.set(g.serial, { ...g, keyFile, stateDir: join(dir, 'state'), publicKey, deviceId: null, daemon: null });
      rows.push(`${g.serial},${publicKey},${Object.entries(g.labels).map(([k, v]) => `${k}=${v}`).join(';')}`);
    }
    await writeFile(fleet.recordsFile, rows.join('\n') + '\n');
    return fleet;
  }

  get controlPlaneUrl(): string {
    return `http://127.0.0.1:${this.cpPort}`;
  }
  get proxyUrl(): string {
    return `http://127.0.0.1:${this.proxyPort}`;
  }
  /** How a manifest names an image of the local registry (the proxy maps it to ALIAS/REPO). */
  get upstreamAlias(): string {
    return UPSTREAM_ALIAS;
  }

  /** The services running now (control plane, registry proxy, gateways' daemons). */
  services(): RunningService[] {
    return [this.controlPlane, this.proxy, ...[...this.gateways.values()].map((g) => g.daemon)].filter((x): x is RunningService => x !== null);
  }

  private child(name: string, args: string[], ready: () => Promise<boolean>, env?: Record<string, string>): Promise<RunningService> {
    const p = this.opts.processes!;
    const logFile = join(this.opts.dir, 'logs', `${name}.log`);
    return spawnService({ name, node: p.node, berth: p.berth, args, env, logFile, ready }).then((c) => ({ name, pid: c.pid, command: c.command, logFile, stop: () => c.stop() }));
  }

  private async startProxy(): Promise<void> {
    const cacheDir = join(this.opts.dir, 'proxy-cache');
    if (this.opts.processes) {
      this.proxy = await this.child(
        'registry-proxy',
        ['registry-proxy', '--listen', `127.0.0.1:${this.proxyPort}`, '--cache-dir', cacheDir, '--upstream', `${UPSTREAM_ALIAS}=${this.opts.engine.registryUrl}`, '--control-plane', this.controlPlaneUrl, '--tag-ttl-seconds', '1'],
        () => answers(`${this.proxyUrl}/berth/v1/upstreams`),
      );
      return;
    }
    const proxy = await startRegistryProxy({
      listen: `127.0.0.1:${this.proxyPort}`,
      cacheDir,
      upstreams: [{ alias: UPSTREAM_ALIAS, url: this.opts.engine.registryUrl }],
      controlPlane: this.controlPlaneUrl,
      // Tags are re-resolved after a second: the demo pushes and publishes in quick succession.
      tagTtlMs: 1000,
      log: this.log.child({ service: 'registry-proxy' }),
    });
    this.proxy = { name: 'registry-proxy', pid: null, command: null, logFile: this.logFile, stop: () => proxy.close() };
  }

  private async startControlPlane(): Promise<void> {
    const dataDir = join(this.opts.dir, 'control-plane');
    const db = `file:${join(dataDir, 'berth.db')}`;
    const offlineAfterMs = this.opts.offlineAfterMs ?? 15_000;
    if (this.opts.processes) {
      this.controlPlane = await this.child(
        'control-plane',
        // Daemons run with their default 30 s heartbeat here, so the control plane's default offline time.
        ['control-plane', '--listen', `127.0.0.1:${this.cpPort}`, '--db', db, '--registry-proxy', this.proxyUrl, '--data-dir', dataDir, ...(this.opts.offlineAfterMs ? ['--offline-after', `${offlineAfterMs}ms`] : [])],
        () => answers(`${this.controlPlaneUrl}/healthz`),
        // The preset admin token travels in the environment, never on a command line.
        { BERTH_ADMIN_TOKEN: this.adminToken },
      );
      return;
    }
    const cp = await startControlPlane({
      listen: `127.0.0.1:${this.cpPort}`,
      db,
      dataDir,
      registryProxy: this.proxyUrl,
      adminToken: this.adminToken,
      // Sightings written every second: "online" follows the 5 s heartbeats closely.
      config: { offlineAfterMs, lastSeenFlushMs: 1000 },
      log: this.log.child({ service: 'control-plane' }),
    });
    this.controlPlane = { name: 'control-plane', pid: null, command: null, logFile: this.logFile, stop: () => cp.close() };
  }

  /** Stops the control plane and starts it again on the same port and database file. */
  async restartControlPlane(): Promise<void> {
    await this.controlPlane?.stop();
    this.controlPlane = null;
    await this.startControlPlane();
  }

  /** Writes the admin token to a 0600 file (for the user to export as BERTH_TOKEN). */
  async writeAdminToken(path: string): Promise<void> {
    await writeFile(path, this.adminToken + '\n', { mode: 0o600 });
  }

  /** Environment for the operator CLI: server and token, nothing from the user's own config. */
  cliEnv(token = this.adminToken): NodeJS.ProcessEnv {
    return { BERTH_SERVER: this.controlPlaneUrl, BERTH_TOKEN: token, XDG_CONFIG_HOME: join(this.opts.dir, 'cli-config'), HOME: this.opts.dir, NO_COLOR: '1' };
  }

  /** Runs `berth <argv…>` in-process against this fleet, as a release manager would type it. */
  async cli(argv: string[], opts: { token?: string; echo?: (line: string) => void; tty?: boolean } = {}): Promise<CliResult> {
    const env = this.cliEnv(opts.token);
    // On a terminal the demo shows the live bars (colour unless the user's NO_COLOR says otherwise).
    if (opts.tty) env.NO_COLOR = process.env.NO_COLOR ?? '';
    return runCaptured(argv, env, { echo: opts.echo, tty: opts.tty });
  }

  /** Like cli, but parses `--output json` and fails with the command's stderr when it fails. */
  async cliJson<T>(argv: string[], token?: string): Promise<T> {
    const r = await this.cli([...argv, '--output', 'json'], { token });
    if (r.code !== 0) throw new Error(`berth ${argv.join(' ')} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  }

  campaign(id: string): Promise<Campaign> {
    return this.cliJson<Campaign>(['campaign', 'status', id]);
  }
  twin(serial: string): Promise<Twin> {
    return this.cliJson<Twin>(['devices', 'show', serial]);
  }
  devices(selector?: string): Promise<DeviceSummary[]> {
    return this.cliJson<DeviceSummary[]>(['devices', 'list', ...(selector ? ['-l', selector] : [])]);
  }

  /** Waits until the campaign's status is one of `statuses`; fails with its last status otherwise. */
  async waitForCampaign(id: string, statuses: string[], timeoutMs = 90_000): Promise<Campaign> {
    return waitFor(`campaign ${id} to be ${statuses.join(' or ')}`, async () => {
      const c = await this.campaign(id);
      return statuses.includes(c.status) ? c : undefined;
    }, { timeoutMs, intervalMs: 500, describe: async () => JSON.stringify(await this.campaign(id)) });
  }

  /** Waits until each gateway's daemon reports running `release` (desired = reported, in sync). */
  async waitForRelease(serials: string[], release: string, timeoutMs = 90_000): Promise<void> {
    for (const serial of serials) {
      await waitFor(`${serial} to run ${release} in sync`, async () => {
        const t = await this.twin(serial);
        return t.inSync && t.reported?.running === release ? t : undefined;
      }, { timeoutMs, intervalMs: 500, describe: async () => JSON.stringify(await this.twin(serial)) });
    }
  }

  gateway(serial: string): Gateway {
    const g = this.gateways.get(serial);
    if (!g) throw new Error(`no gateway ${serial} in this fleet`);
    return g;
  }

  /** Starts (or restarts) a gateway's daemon; the first start enrolls it. */
  async startGateway(serial: string): Promise<Gateway> {
    const g = this.gateway(serial);
    if (g.daemon) return g;
    const name = `edge-daemon-${serial}`;
    if (this.opts.processes) {
      const state = new StateDir(g.stateDir);
      g.daemon = await this.child(
        name,
        ['edge-daemon', '--control-plane', this.controlPlaneUrl, '--state-dir', g.stateDir, '--serial', g.serial, '--key', g.keyFile, '--docker-host', this.opts.engine.dockerHost, ...(this.opts.secretsDir ? ['--secrets-dir', this.opts.secretsDir] : [])],
        // Ready once enrolled: the credentials are in its state dir.
        async () => (await state.loadCredentials()) !== undefined,
      );
      g.deviceId = (await state.loadCredentials())?.deviceId ?? null;
      return g;
    }
    const daemon = await startEdgeDaemon({
      controlPlane: this.controlPlaneUrl,
      stateDir: g.stateDir,
      serial: g.serial,
      key: g.keyFile,
      dockerHost: this.opts.engine.dockerHost,
      secretsDir: this.opts.secretsDir,
      log: this.log.child({ service: 'edge-daemon', serial: g.serial }),
      heartbeatMs: 5000,
      reconcileIntervalMs: 5000,
    });
    g.deviceId = daemon.deviceId;
    g.daemon = { name, pid: null, command: null, logFile: this.logFile, stop: () => daemon.close() };
    return g;
  }

  /** Stops a gateway's daemon (the gateway goes offline); its containers keep running. */
  async stopGateway(serial: string): Promise<void> {
    const g = this.gateway(serial);
    const d = g.daemon;
    g.daemon = null;
    await d?.stop();
  }

  /** The engine's inspection of `service`'s running container on a gateway; throws when none runs. */
  async inspectRunning(serial: string, service: string): Promise<Docker.ContainerInspectInfo> {
    const c = (await this.containers(serial)).find((x) => x.service === service && x.state === 'running');
    if (!c) throw new Error(`${serial}: no running ${service} container`);
    return this.docker.getContainer(c.name).inspect();
  }

  /** The containers a gateway's daemon manages, from the engine. */
  async containers(serial: string): Promise<GatewayContainer[]> {
    const id = this.gateway(serial).deviceId;
    if (!id) return [];
    const list = await this.docker.listContainers({ all: true, filters: { label: [`${LABEL.device}=${id}`] } });
    const out: GatewayContainer[] = [];
    for (const c of list) {
      const info = await this.docker.getContainer(c.Id).inspect().catch(() => null);
      if (!info) continue;
      out.push({
        service: c.Labels[LABEL.service] ?? '?',
        release: c.Labels[LABEL.release] ?? '?',
        imageId: info.Image,
        state: info.State.Status,
        health: info.State.Health?.Status ?? 'none',
        name: info.Name.replace(/^\//, ''),
      });
    }
    return out.sort((a, b) => a.service.localeCompare(b.service));
  }

  /** Stops everything this fleet started: daemons, their containers and volumes, the services. */
  async stop(opts: { removeDir?: boolean } = {}): Promise<void> {
    for (const g of this.gateways.values()) await this.stopGateway(g.serial).catch(() => undefined);
    for (const g of this.gateways.values()) await removeDeviceContainers(this.docker, g.deviceId).catch(() => undefined);
    await this.controlPlane?.stop().catch(() => undefined);
    await this.proxy?.stop().catch(() => undefined);
    this.controlPlane = null;
    this.proxy = null;
    await new Promise<void>((resolve) => this.log.flush(() => resolve()));
    if (opts.removeDir) await rm(this.opts.dir, { recursive: true, force: true });
  }
}

/** Removes the containers and volumes the engine holds for one device (by the daemon's labels). */
/** A container's environment (`Config.Env`, NAME=value lines) as an object. */
export function envObject(env: string[] | null | undefined): Record<string, string> {
  return Object.fromEntries((env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}

export async function removeDeviceContainers(docker: Docker, deviceId: string | null): Promise<number> {
  if (!deviceId) return 0;
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL.device}=${deviceId}`] } });
  for (const c of list) await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined);
  const { Volumes } = await docker.listVolumes({ filters: { label: [`${LABEL.device}=${deviceId}`] } });
  for (const v of Volumes ?? []) await docker.getVolume(v.Name).remove().catch(() => undefined);
  return list.length;
}

// ---- the demo application: three releases of one small service, plus an agent that never changes ----

export interface DemoImages {
  v1: ForgedImage;
  v2: ForgedImage;
  /** Starts but never becomes healthy: its health check fails. */
  v3: ForgedImage;
  agent: ForgedImage;
}

export const DEMO_REPOSITORY = 'berth-demo/app';
export const AGENT_REPOSITORY = 'berth-demo/agent';

/**
 * The app writes /tmp/ready once it has started, and the manifests' health check looks for it;
 * v3 "crashes during start-up" before writing it, so its health check fails.
 */
function appScript(version: string, healthy: boolean): string {
  return [
    '#!/bin/sh',
    `echo "demo app ${version} starting"`,
    healthy ? `echo ${version} > /tmp/ready` : `echo "demo app ${version}: cannot open /etc/demo/settings: No such file or directory" >&2`,
    'while true; do sleep 5; done',
    '',
  ].join('\n');
}

/** Builds the demo images from busybox and pushes them to the local registry (by tag). */
export async function forgeDemoImages(registry: string): Promise<DemoImages> {
  const busybox = busyboxLayer();
  const app = (version: string, healthy: boolean) =>
    forgeImage(registry, DEMO_REPOSITORY, version, {
      layers: [busybox, { files: { '/app/run.sh': { content: appScript(version, healthy), mode: 0o755 }, '/app/VERSION': version + '\n' } }],
      config: { Cmd: ['/app/run.sh'], Labels: { 'org.opencontainers.image.version': version } },
    });
  const [v1, v2, v3, agent] = await Promise.all([
    app('1.0.0', true),
    app('2.0.0', true),
    app('3.0.0', false),
    forgeImage(registry, AGENT_REPOSITORY, '1.0.0', { layers: [busybox], config: { Cmd: ['sh', '-c', 'while true; do sleep 5; done'] } }),
  ]);
  return { v1, v2, v3, agent };
}

/**
 * The demo manifest of one version: the app at that version's tag (pinned at publish) and the
 * agent, unchanged across versions (so an update leaves it running).
 */
export interface DemoManifestOptions {
  /** The app image tag to run (default: the manifest version); a config-only release reuses one. */
  app?: string;
  /** The app's environment differs per release when given (a config change recreates it). */
  greeting?: string;
  healthTimeout?: string;
}

export function demoManifest(registry: string, version: string, opts: DemoManifestOptions = {}): string {
  return [
    '# The Berth demo: one app that changes with each release, one agent that does not.',
    'name: demo',
    `version: ${version}`,
    'services:',
    '  app:',
    `    image: ${registry}/${DEMO_REPOSITORY}:${opts.app ?? version}`,
    '    network_mode: none',
    '    restart: unless-stopped',
    `    environment: { DEMO_GREETING: ${JSON.stringify(opts.greeting ?? 'hello from berth')} }`,
    '    healthcheck: { test: ["CMD-SHELL", "test -s /tmp/ready"], interval: 1s, timeout: 10s, retries: 2, start_period: 0s }',
    '  agent:',
    `    image: ${registry}/${AGENT_REPOSITORY}:1.0.0`,
    '    network_mode: none',
    '    restart: unless-stopped',
    `x-berth: { update: { strategy: download-then-swap, health_timeout: ${opts.healthTimeout ?? '20s'} } }`,
    '',
  ].join('\n');
}

export async function writeDemoManifest(dir: string, registry: string, version: string, opts: DemoManifestOptions = {}): Promise<string> {
  const file = join(dir, `demo-${version}.yaml`);
  await writeFile(file, demoManifest(registry, version, opts));
  return file;
}
