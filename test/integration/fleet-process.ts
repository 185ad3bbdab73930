/**
 * Services as child processes (`node dist/bin/berth.js <service> …`), the way an operator runs
 * them: flags on the command line, secrets in the environment, JSON logs to a file. The demo runs
 * its fleet this way; the tests run it in-process. Stopped by their own pid, never by name.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { logTail, waitUntil } from '../rig/proc.js';

export interface ChildService {
  name: string;
  pid: number;
  logFile: string;
  /** The command as an operator would type it (`berth …`), for the story. */
  command: string;
  stop(): Promise<void>;
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
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, sig) => {
      exit = sig ? `killed by ${sig}` : `exited with code ${code}`;
      resolve();
    });
    child.once('error', (err) => {
      exit = `failed to start: ${err.message}`;
      resolve();
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

/** True when `url` answers 2xx. */
export async function answers(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
  await res?.arrayBuffer().catch(() => undefined);
  return res !== undefined && res.ok;
}
