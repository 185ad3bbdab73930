import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * True when `pid` is a live (non-zombie) process whose command line mentions `marker`. The marker
 * (the rig dir, a config path) guards against a recycled pid: the rig never signals a process it
 * cannot prove it started.
 */
export function processAlive(pid: number | undefined, marker: string): boolean {
  if (!pid || pid <= 0) return false;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return false;
  }
  // A zombie has an empty command line; it is gone for our purposes.
  return cmdline.length > 0 && cmdline.split('\0').some((arg) => arg.includes(marker));
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL; only if the pid still proves to be ours. */
export async function terminate(pid: number | undefined, marker: string, graceMs = 15_000): Promise<void> {
  if (!processAlive(pid, marker)) return;
  signal(pid!, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!processAlive(pid, marker)) return;
    await sleep(100);
  }
  signal(pid!, 'SIGKILL');
  for (let i = 0; i < 50 && processAlive(pid, marker); i++) await sleep(100);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

export interface Spawned {
  pid: number;
  /** Set once the process has exited (with its code or signal), so waits can fail fast. */
  exited: () => string | undefined;
}

/**
 * Starts a long-lived helper detached from this process (its own process group, output to a log
 * file), so a rig kept with BERTH_RIG_KEEP=1 outlives the vitest run that started it.
 */
export function spawnDetached(command: string, args: string[], logPath: string, env?: NodeJS.ProcessEnv): Spawned {
  const fd = openSync(logPath, 'a');
  try {
    const child = spawn(command, args, { detached: true, stdio: ['ignore', fd, fd], env: env ?? process.env });
    let exit: string | undefined;
    child.on('exit', (code, sig) => {
      exit = sig ? `killed by ${sig}` : `exited with code ${code}`;
    });
    child.on('error', (err) => {
      exit = `failed to spawn: ${err.message}`;
    });
    child.unref();
    if (!child.pid) throw new Error(`could not start ${command}: not found or not executable (install it, or point the BERTH_RIG_*_BIN variable at it)`);
    return { pid: child.pid, exited: () => exit };
  } finally {
    closeSync(fd);
  }
}

/** The last lines of a log file, for error messages that say what failed. */
export function logTail(path: string, lines = 25): string {
  try {
    const text = readFileSync(path, 'utf8').trimEnd().split('\n');
    return text.slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago (callers retry on EADDRINUSE). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('could not get a free port'))));
    });
  });
}

/** Polls `probe` until it returns true, failing with `describe()` on timeout or early exit. */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  opts: { timeoutMs: number; exited?: () => string | undefined; log?: string },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const exit = opts.exited?.();
    if (exit) throw new Error(`${what}: process ${exit} before it answered${opts.log ? `; log ${opts.log}:\n${logTail(opts.log)}` : ''}`);
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new Error(`${what}: no answer within ${opts.timeoutMs} ms${opts.log ? `; log ${opts.log}:\n${logTail(opts.log)}` : ''}`);
    }
    await sleep(100);
  }
}
