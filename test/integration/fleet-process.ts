/**
 * Services as child processes (`node dist/bin/berth.js <service> …`), the way an operator runs
 * them: flags on the command line, secrets in the environment, JSON logs to a file. The demo runs
 * its fleet this way; the tests run it in-process. Stopped by their own pid, never by name.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { logTail, waitUntil } from '../rig/proc.js';

export interface ChildService {
  name: string;
  pid: number;
  logFile: string;
  /** The command as an operator would type it (`berth …`), for the story. */
  command: string;
  stop(): Promise<void>;
  /** Sends `signal` and resolves with how the process ended (crash tests: kill -9, then restart). */
  kill(signal: NodeJS.Signals): Promise<ExitStatus>;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnServiceOptions {
  name: string;
  node: string;
  /** Path of dist/bin/berth.js. */
  berth: string;
  args: string[];
  /** Added to this process's environment (secrets go here, never in args). */
  env?: Record<string, string>;
  logFile: string;
  /** True once the service answers; polled until `timeoutMs`. */
  ready: () => Promise<boolean>;
  timeoutMs?: number;
}

/** Starts `berth <args…>` and waits until it is ready; fails with its log's last lines otherwise. */
export async function spawnService(opts: SpawnServiceOptions): Promise<ChildService> {
  const fd = openSync(opts.logFile, 'a');
  let exit: string | undefined;
  let child;
  try {
    child = spawn(opts.node, [opts.berth, ...opts.args], { stdio: ['ignore', fd, fd], env: { ...process.env, ...opts.env } });
  } finally {
    closeSync(fd);
  }
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, sig) => {
      exit = sig ? `killed by ${sig}` : `exited with code ${code}`;
      resolve({ code, signal: sig });
    });
    child.once('error', (err) => {
      exit = `failed to start: ${err.message}`;
      resolve({ code: null, signal: null });
    });
  });
  const pid = child.pid;
  // If this process dies without stopping it, the service does not outlive it.
  const onExit = (): void => {
    if (exit === undefined && pid) child.kill('SIGKILL');
  };
  process.once('exit', onExit);
  const service: ChildService = {
    name: opts.name,
    pid: pid ?? -1,
    logFile: opts.logFile,
    command: `berth ${opts.args.join(' ')}`,
    async stop() {
      process.removeListener('exit', onExit);
      if (exit !== undefined) return;
      child.kill('SIGTERM');
      const stopped = await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)]);
      if (!stopped) {
        child.kill('SIGKILL');
        await exited;
      }
    },
    async kill(signal) {
      if (exit === undefined) child.kill(signal);
      const status = await exited;
      process.removeListener('exit', onExit);
      return status;
    },
  };
  try {
    if (!pid) throw new Error(`${opts.name}: could not start ${opts.node} ${opts.berth}`);
    await waitUntil(opts.name, opts.ready, { timeoutMs: opts.timeoutMs ?? 30_000, exited: () => exit, log: opts.logFile });
  } catch (err) {
    await service.stop();
    throw err instanceof Error ? err : new Error(`${opts.name} did not start; log ${opts.logFile}:\n${logTail(opts.logFile)}`);
  }
  return service;
}

export interface ControlPlaneChildOptions {
  /** Its data directory; the log goes to `<dir>/<name>.log`, appended across restarts. */
  dir: string;
  port: number;
  /** Default: file:<dir>/berth.db. */
  db?: string;
  /** BERTH_ADMIN_TOKEN; '' lets it write <dir>/admin.token. */
  adminToken: string;
  /** More flags, e.g. ['--workers', '1']. */
  args?: string[];
  name?: string;
  logLevel?: string;
}

/** `berth control-plane` as its own process on 127.0.0.1:`port`, ready once /healthz answers (tests run from source only). */
export async function startControlPlaneChild(opts: ControlPlaneChildOptions): Promise<{ url: string; svc: ChildService }> {
  const url = `http://127.0.0.1:${opts.port}`;
  const name = opts.name ?? 'control-plane';
  const svc = await spawnService({
    name,
    node: process.execPath,
    // The built CLI, from the test sources (dist/ is compiled by the rig's global setup, never by a test).
    berth: resolve(import.meta.dirname, '../../dist/bin/berth.js'),
    args: ['control-plane', '--listen', `127.0.0.1:${opts.port}`, '--db', opts.db ?? `file:${join(opts.dir, 'berth.db')}`, '--data-dir', opts.dir, ...(opts.args ?? [])],
    env: { BERTH_ADMIN_TOKEN: opts.adminToken, BERTH_LOG_LEVEL: opts.logLevel ?? 'warn' },
    logFile: join(opts.dir, `${name}.log`),
    ready: () => answers(`${url}/healthz`),
  });
  return { url, svc };
}

/** True when `url` answers 2xx. */
export async function answers(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
  await res?.arrayBuffer().catch(() => undefined);
  return res !== undefined && res.ok;
}

/** A log line as the services write it (pino JSON). */
export type LogLine = Record<string, any>;

/** The JSON lines of a service's log, in order (anything else, a stray stderr line, skipped). */
export function jsonLogLines(text: string): LogLine[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

/**
 * The first line of the log `read` returns that `predicate` accepts, read again every 100 ms for up
 * to 60 s; `gone` names why waiting is pointless (the process exited), to fail at once.
 */
export async function loggedLine(read: () => string, what: string, predicate: (line: LogLine) => boolean, gone: () => string | undefined = () => undefined): Promise<LogLine> {
  for (let i = 0; i < 600; i++) {
    const hit = jsonLogLines(read()).find(predicate);
    if (hit) return hit;
    const why = gone();
    if (why) throw new Error(`${why} before logging ${what}`);
    await sleep(100);
  }
  throw new Error(`the control plane did not log ${what}: ${read().slice(-2000)}`);
}
