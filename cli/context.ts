/**
 * What a command runs with: its parsed arguments, where output goes, and a lazily built client
 * (so `--help` and local errors never need a server). Passed in, never global, so the commands
 * can be driven by tests and by the demo with their own streams and environment.
 */
import type { LeafSpec, ParsedCommand } from './framework.js';
import type { BerthClient } from './client.js';

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  /** stdout is a terminal (live redraws, colours). */
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
  /** All of stdin as text (for `login` and `-f -`). */
  readStdin: () => Promise<string>;
  /** stdin is a terminal (then `login` prompts instead of reading a pipe). */
  stdinIsTTY: boolean;
  /** Prompts on the terminal without echo. */
  promptSecret: (question: string) => Promise<string>;
  /** Asks a question on the terminal and returns the line typed (confirmations, cli/confirm.ts); absent: nothing to ask on. */
  ask?: (question: string) => Promise<string>;
  now: () => Date;
  sleep: (ms: number) => Promise<void>;
  home: string;
}

export interface Context {
  io: Io;
  args: ParsedCommand;
  usage: string;
  client: () => Promise<BerthClient>;
}

/** A verb: its declaration (usage, about, options with their help and defaults, examples; framework.ts) and what it does. */
export interface Command extends LeafSpec {
  run: (ctx: Context) => Promise<number>;
}

export function printJson(io: Io, value: unknown): void {
  io.out(JSON.stringify(value, null, 2));
}
