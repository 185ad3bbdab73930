/**
 * The operator CLI run in process with its own streams, for the integration tests and the demo
 * (imported from dist by `npm run demo`, so no vitest in here): one place that builds the Io, so a
 * field added to Io is added once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { run, type Io } from '../../cli/index.js';

export interface CaptureOptions {
  /** Called with every line written, as well as collecting it (the demo echoes). */
  echo?: (line: string) => void;
  /** stdout is a terminal (colours, live redraws). */
  tty?: boolean;
  /** What stdin holds (`--from-stdin`, `-f -`, `login`). */
  stdin?: string;
  /** stdin is a terminal that types this line to every question asked (confirmations). */
  answer?: string;
}

/** An Io whose output is kept: the lines, the questions asked, and both streams joined. */
export interface CapturedIo extends Io {
  stdout: string[];
  stderr: string[];
  asked: string[];
}

export function capturingIo(env: NodeJS.ProcessEnv, opts: CaptureOptions = {}): { io: CapturedIo; result: () => { stdout: string; stderr: string } } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const asked: string[] = [];
  const { echo, answer } = opts;
  const io: CapturedIo = {
    stdout,
    stderr,
    asked,
    out: (t) => {
      stdout.push(t);
      echo?.(t);
    },
    err: (t) => {
      stderr.push(t);
      echo?.(t);
    },
    isTTY: opts.tty ?? false,
    env,
    readStdin: async () => opts.stdin ?? '',
    stdinIsTTY: answer !== undefined,
    promptSecret: async () => opts.stdin ?? '',
    ...(answer !== undefined ? { ask: async (q: string) => (asked.push(q), answer) } : {}),
    now: () => new Date(),
    sleep: (ms) => sleep(ms),
    home: env.HOME ?? '/nonexistent',
  };
  return { io, result: () => ({ stdout: stdout.join('\n'), stderr: stderr.join('\n') }) };
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** The questions the CLI asked on the (pretend) terminal. */
  asked: string[];
}

/** `berth ARGV` in process: its exit code and what it wrote. */
export async function runCaptured(argv: string[], env: NodeJS.ProcessEnv, opts: CaptureOptions = {}): Promise<CliRun> {
  const { io, result } = capturingIo(env, opts);
  const code = await run(argv, io);
  return { code, ...result(), asked: io.asked };
}
