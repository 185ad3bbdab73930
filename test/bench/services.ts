import { spawnSync } from 'node:child_process';
import { get } from 'node:http';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { freePort } from '../rig/index.js';
import { postJson } from './devices.js';
import { gatewayCommand } from './daemon-entry.js';
import { benchScript, BERTH_BIN, processTree, spawnBerth, spawnNode, waitReady, type Child } from './proc.js';

/**
 * The services as a user runs them (`berth control-plane`, `berth registry-proxy` from dist on
 * plain Node), each in its own process with its log in a file, for the benches to measure from
 * outside.
 */

export interface ControlPlaneProcess {
  url: string;
  /** Every address it listens on (`url` first; with `bothLoopbacks` also `http://[::1]:PORT`). */
  urls: string[];
  adminToken: string;
  child: Child;
  dbFile: string;
  stop(): Promise<void>;
  /** The processes serving it: the one process, or a cluster's primary and its workers. */
  pids(): number[];
  /**
   * Stops it (SIGTERM, graceful) and starts it again on the same database, port and token; `env`
   * adds to (or replaces) the environment it started with, `workers` replaces its `--workers`,
   * `bin` runs another build's dist/bin/berth.js from then on (before/after a change, one run).
   */
  restart(opts?: { env?: Record<string, string>; workers?: number; bin?: string }): Promise<void>;
}

/**
 * `berth control-plane` on a fresh embedded database in `dir`. The admin token is preset through
 * BERTH_ADMIN_TOKEN (environment, never argv). Logs at the default level, as deployed, to a file.
 */
/**
 * Resolves once each of `workers` workers of `berth control-plane --workers N` has answered a
 * /healthz (`x-berth-worker`). The first answer comes from worker 1; the others start after it
 * listens (seconds on a loaded machine), and connections opened meanwhile all go to the workers
 * already listening: a load started then measures fewer workers than asked (issue 17).
 */
export async function everyWorkerAnswers(url: string, workers: number): Promise<void> {
  if (workers <= 1) return;
  const seen = new Set<string>();
  for (let i = 0; seen.size < workers; i++) {
    if (i > 600) throw new Error(`--workers ${workers}: only workers ${[...seen].join(', ')} answered within 60 s`);
    // A new connection each time: the cluster hands out connections, not requests, round robin.
    const w = await new Promise<string | undefined>((resolve) =>
      get(`${url}/healthz`, { agent: false }, (res) => {
        res.resume();
        resolve(res.headers['x-berth-worker'] as string | undefined);
      }).on('error', () => resolve(undefined)),
    );
    if (w) seen.add(w);
    if (seen.size < workers) await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startControlPlaneProcess(dir: string, opts: { registryProxy?: string; env?: Record<string, string>; workers?: number; bothLoopbacks?: boolean } = {}): Promise<ControlPlaneProcess> {
  const port = await freePort();
  const adminToken = 'berth_' + randomBytes(32).toString('base64url');
  const dbFile = join(dir, 'cp', 'berth.db');
  // Both loopbacks (fleet-sim): twice the connections the source ports allow to one address.
  const listen = opts.bothLoopbacks ? `127.0.0.1:${port},[::1]:${port}` : `127.0.0.1:${port}`;
  const args = ['control-plane', '--listen', listen, '--db', `file:${dbFile}`, '--data-dir', join(dir, 'cp')];
  if (opts.registryProxy) args.push('--registry-proxy', opts.registryProxy);
  const url = `http://127.0.0.1:${port}`;
  let env = { ...opts.env };
  // One process unless asked (`--workers` defaults to the cores): CPU and RSS then read one pid.
  let workers = opts.workers ?? 1;
  let bin = BERTH_BIN;
  const launch = async (): Promise<Child> => {
    const child = spawnNode(bin, [...args, '--workers', String(workers)], { logFile: join(dir, 'control-plane.log'), env: { BERTH_ADMIN_TOKEN: adminToken, ...env } });
    try {
      await waitReady(child, `${url}/healthz`, 60_000);
    } catch (err) {
      await child.stop();
      throw err;
    }
    return child;
  };
  const cp: ControlPlaneProcess = {
    url,
    urls: opts.bothLoopbacks ? [url, `http://[::1]:${port}`] : [url],
    adminToken,
    child: await launch(),
    dbFile,
    stop: () => cp.child.stop(10_000),
    pids: () => processTree(cp.child.pid),
    async restart(more = {}) {
      await cp.child.stop(10_000);
      if (more.env) env = { ...env, ...more.env };
      if (more.workers !== undefined) workers = more.workers;
      if (more.bin !== undefined) bin = more.bin;
      cp.child = await launch();
    },
  };
  return cp;
}

export interface ProxyProcess {
  url: string;
  child: Child;
  stop(): Promise<void>;
}

/**
 * Whether `berth <service>` parses its flags on this Node. Today common/config.ts passes
 * `multiple: undefined` to node:util parseArgs, which Node 20 refuses; then the benches start the
 * same start function through serve.ts instead (same modules, own process), and say so.
 */
export function cliWorks(service: 'registry-proxy' | 'edge-daemon'): boolean {
  return spawnSync(process.execPath, [BERTH_BIN, service, '--help'], { stdio: 'ignore' }).status === 0;
}

/** Starts a service through serve.ts with its options on stdin (never secrets on argv). */
export function spawnServe(component: 'registry-proxy' | 'edge-daemon', options: unknown, logFile: string): Child {
  const child = spawnNode(benchScript('serve.js'), [component], { logFile, stdin: true });
  child.proc.stdin?.end(JSON.stringify(options));
  return child;
}

/** `berth registry-proxy --anonymous` in front of `upstreamUrl` under alias `alias`. */
export async function startProxyProcess(dir: string, upstreamUrl: string, alias = 'rig'): Promise<ProxyProcess> {
  const port = await freePort();
  const logFile = join(dir, 'registry-proxy.log');
  const cacheDir = join(dir, 'proxy-cache');
  const child = cliWorks('registry-proxy')
    ? spawnBerth(['registry-proxy', '--listen', `127.0.0.1:${port}`, '--cache-dir', cacheDir, '--upstream', `${alias}=${upstreamUrl}`, '--anonymous'], { logFile })
    : spawnServe('registry-proxy', { listen: `127.0.0.1:${port}`, cacheDir, upstreams: [{ alias, url: upstreamUrl }], anonymous: true }, logFile);
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitReady(child, `${url}/healthz`, 30_000);
  } catch (err) {
    await child.stop();
    throw err;
  }
  return { url, child, stop: () => child.stop() };
}

/** An operator call; throws with the answer when the status is not the expected one. */
export async function operator(cp: { url: string; adminToken: string }, method: 'GET' | 'POST', path: string, body?: { json?: unknown; text?: string; type?: string }, expect: number[] = [200, 201]): Promise<Record<string, unknown>> {
  if (method === 'POST' && body?.json !== undefined && body.text === undefined) {
    const r = await postJson(cp.url, path, body.json, cp.adminToken);
    if (!expect.includes(r.status)) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.json).slice(0, 500)}`);
    return r.json;
  }
  // A keep-alive connection the server closed as it was reused fails at once (EPIPE, ECONNRESET):
  // retried once on a new connection. The calls retried are idempotent (import, reads).
  const send = () =>
    fetch(cp.url + path, {
      method,
      headers: { authorization: `Bearer ${cp.adminToken}`, ...(body?.type ? { 'content-type': body.type } : {}) },
      body: body?.text,
    });
  const res = await send()
    .catch(() => send())
    .catch((err: Error & { cause?: Error }) => {
      throw new Error(`${method} ${path}: ${err.message}${err.cause ? ` (${err.cause.message})` : ''}`);
    });
  const text = await res.text();
  if (!expect.includes(res.status)) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 500)}`);
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

/** Publishes a manifest (YAML) and returns name@version. */
export async function publish(cp: { url: string; adminToken: string }, yaml: string): Promise<string> {
  const out = await operator(cp, 'POST', '/v1/manifests', { text: yaml, type: 'application/yaml' });
  return `${String(out.name)}@${String(out.version)}`;
}

export interface DaemonProcess {
  serial: string;
  child: Child;
  stop(): Promise<void>;
}

/**
 * An edge daemon as a gateway runs it: its own Node process from dist (`berth edge-daemon`, or
 * serve.ts when the CLI cannot parse flags here), its own state dir and key file.
 */
export function startDaemonProcess(dir: string, o: { controlPlane: string; serial: string; keyFile: string; dockerHost: string }, useCli = cliWorks('edge-daemon')): DaemonProcess {
  const stateDir = join(dir, 'gateways', o.serial, 'state');
  const logFile = join(dir, `daemon-${o.serial}.log`);
  const flags = ['--control-plane', o.controlPlane, '--state-dir', stateDir, '--serial', o.serial, '--key', o.keyFile, '--docker-host', o.dockerHost];
  // BERTH_BENCH_DAEMON_BIN: another build's dist/bin/berth.js runs the daemon (before/after a change, same bench code).
  // Either build runs as a gateway runs it (daemon-entry.ts: dist/bin/edge-daemon.cjs where the build has it).
  const bin = process.env.BERTH_BENCH_DAEMON_BIN ?? (useCli ? BERTH_BIN : undefined);
  const gateway = bin ? gatewayCommand(bin, flags) : undefined;
  const child = gateway
    ? spawnNode(gateway.script, gateway.args, { logFile })
    : spawnServe('edge-daemon', { controlPlane: o.controlPlane, stateDir, serial: o.serial, key: o.keyFile, dockerHost: o.dockerHost }, logFile);
  return { serial: o.serial, child, stop: () => child.stop(15_000) };
}
