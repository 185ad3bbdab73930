import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, readdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Child processes for benchmarks: services run as their own processes (so their RSS and CPU are
 * theirs alone, read from /proc), and load generators too (so a client never shares the server's
 * event loop). Everything is stopped by its own pid.
 */

/** dist/ root: this file is dist/test/bench/proc.js once compiled. */
export const DIST = join(dirname(fileURLToPath(import.meta.url)), '../..');
export const BERTH_BIN = join(DIST, 'bin/berth.js');
/** A bench script of this build by name, or another build's by absolute path (cp-ab.ts --loads compares load generators). */
export const benchScript = (name: string): string => (isAbsolute(name) ? name : join(DIST, 'test/bench', name));

/**
 * The command that runs bench script `name` on this Node at niceness `nice` (through nice(1), so
 * every thread of it has it from its start): load processes share the two cores with the server.
 */
export function benchScriptCommand(name: string, nice: number): [string, string[]] {
  const node = [process.execPath, benchScript(name)];
  return nice > 0 ? ['nice', ['-n', String(nice), ...node]] : [node[0], node.slice(1)];
}

/** Linux reports utime/stime in clock ticks; 100 on every mainstream kernel config (getconf CLK_TCK). */
const CLK_TCK = 100;

export interface Child {
  pid: number;
  proc: ChildProcess;
  logFile: string;
  /** Resolves with the exit code (or null on a signal) once the process is gone. */
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * The children alive in this process. Module state on purpose: when the runner is interrupted
 * (SIGINT, SIGTERM, a timeout) the benches' finally blocks do not run, and without this the
 * services they started would be left orphaned, measuring against the next run.
 */
const live = new Set<ChildProcess>();

/** Kills (SIGKILL, by pid) every child this process started that is still alive. */
export function killLiveChildren(): number {
  let n = 0;
  for (const p of live) {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGKILL');
      n++;
    }
  }
  live.clear();
  return n;
}

function track(proc: ChildProcess, logFile: string): Child {
  if (proc.pid === undefined) throw new Error(`could not spawn ${proc.spawnfile}`);
  const pid = proc.pid;
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  const exited = new Promise<number | null>((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve(proc.exitCode);
    else proc.once('exit', (code) => resolve(code));
  });
  return {
    pid,
    proc,
    logFile,
    exited,
    async stop(graceMs = 5000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const done = await Promise.race([exited.then(() => true), sleep(graceMs, undefined, { ref: false }).then(() => false)]);
      if (!done) {
        proc.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** Starts `berth <args…>` from dist on plain Node, stdout+stderr appended to `logFile`. */
export function spawnBerth(args: string[], opts: { logFile: string; env?: Record<string, string> }): Child {
  return spawnNode(BERTH_BIN, args, opts);
}

export function spawnNode(script: string, args: string[], opts: { logFile: string; env?: Record<string, string>; stdin?: boolean }): Child {
  const fd = openSync(opts.logFile, 'a');
  try {
    const proc = spawn(process.execPath, [script, ...args], {
      env: { ...process.env, ...opts.env },
      stdio: [opts.stdin ? 'pipe' : 'ignore', fd, fd],
    });
    return track(proc, opts.logFile);
  } finally {
    closeSync(fd);
  }
}

/** Polls `url` until it answers 2xx; fails with the child's log tail when the child dies or time runs out. */
export async function waitReady(child: Child, url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void child.exited.then(() => (exited = true));
  for (;;) {
    if (exited) throw new Error(`process ${child.pid} exited before ${url} answered:\n${logTail(child.logFile)}`);
    const ok = await fetch(url, { signal: AbortSignal.timeout(2000) })
      .then(async (r) => {
        await r.arrayBuffer();
        return r.ok;
      })
      .catch(() => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms:\n${logTail(child.logFile)}`);
    await sleep(100);
  }
}

export function logTail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** VmRSS and VmHWM (peak RSS) of a live process, and VmRSS split into anonymous and file-backed pages, in bytes. */
export function memoryOf(pid: number): { rss: number; hwm: number; anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m) throw new Error(`/proc/${pid}/status has no ${field}`);
    return Number(m[1]) * 1024;
  };
  return { rss: kib('VmRSS'), hwm: kib('VmHWM'), anon: kib('RssAnon'), file: kib('RssFile') };
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSecondsOf(pid: number): number {
  return statCpuSeconds(`/proc/${pid}/stat`);
}

/** CPU seconds a process's main thread (its event loop) has used so far, its other threads (libuv's pool, V8's) not included. */
export function mainThreadCpuSecondsOf(pid: number): number {
  return statCpuSeconds(`/proc/${pid}/task/${pid}/stat`);
}

function statCpuSeconds(path: string): number {
  const stat = readFileSync(path, 'utf8');
  // The command name is in parentheses and may contain spaces: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** A process and its descendants (a cluster primary and its workers), by /proc/<pid>/task/<tid>/children. */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${out[i]}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        for (const c of readFileSync(`/proc/${out[i]}/task/${tid}/children`, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
      } catch {
        // the thread ended meanwhile
      }
    }
  }
  return out;
}

/** CPU seconds of a process and its live descendants (a worker that died meanwhile takes its seconds with it). */
export function treeCpuSecondsOf(pid: number): number {
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      total += cpuSecondsOf(p);
    } catch {
      // gone
    }
  }
  return total;
}

/** Samples VmRSS every `everyMs` until stopped; returns the highest sample and VmHWM at the end. */
export function sampleMemory(pid: number, everyMs = 100): { stop(): { peakRss: number; hwm: number } } {
  let peak = 0;
  let hwm = 0;
  const read = (): void => {
    try {
      const m = memoryOf(pid);
      peak = Math.max(peak, m.rss);
      hwm = Math.max(hwm, m.hwm);
    } catch {
      // the process is gone; keep what was seen
    }
  };
  read();
  const timer = setInterval(read, everyMs);
  return {
    stop() {
      clearInterval(timer);
      read();
      return { peakRss: peak, hwm };
    },
  };
}

/**
 * Runs a bench helper script (compiled, in dist/test/bench) as a child process: the job goes in as
 * JSON on stdin (tokens are secrets: never on a command line), the result comes back as the last
 * line of stdout.
 */
export async function runWorker<T>(script: string, job: unknown, opts: { logFile: string; timeoutMs?: number }): Promise<T> {
  const proc = spawn(process.execPath, [benchScript(script)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  proc.stdout.on('data', (b: Buffer) => out.push(b));
  proc.stderr.on('data', (b: Buffer) => err.push(b));
  proc.stdin.end(JSON.stringify(job));
  const child = track(proc, opts.logFile);
  const timeout = opts.timeoutMs ?? 600_000;
  // Unref'd: a pending timeout must not keep the runner alive once everything else is done.
  const done = await Promise.race([child.exited.then((code) => ({ code })), sleep(timeout, undefined, { ref: false }).then(() => null)]);
  if (done === null) {
    await child.stop(1000);
    throw new Error(`${script} did not finish within ${timeout} ms: ${Buffer.concat(err).toString().slice(-2000)}`);
  }
  const text = Buffer.concat(out).toString('utf8').trim();
  if (done.code !== 0) throw new Error(`${script} exited ${done.code}: ${Buffer.concat(err).toString().slice(-2000)}`);
  const last = text.split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as T;
  } catch {
    throw new Error(`${script} printed no JSON result: ${text.slice(-500)} ${Buffer.concat(err).toString().slice(-1000)}`);
  }
}

/** Reads a worker's job from stdin (the counterpart of runWorker). */
export async function readJob<T>(): Promise<T> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as T;
}

/** A temp dir for one bench run, removed by `remove()` (call it in a finally). */
export function scratchDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), `berth-bench-${prefix}-`));
  // BERTH_BENCH_KEEP=1 keeps the dirs (logs of every service) to look into a failure.
  return { dir, remove: () => (process.env.BERTH_BENCH_KEEP ? console.error(`kept ${dir}`) : rmSync(dir, { recursive: true, force: true })) };
}
