import { parseFlags, usageOf, type FlagSpec } from './config.js';
import { createLogger, type Logger } from './log.js';

/**
 * How every service entry (`berth control-plane|registry-proxy|edge-daemon`) starts and stops:
 * - a bad or missing flag (anything `configure` refuses) prints one line and exits 2;
 * - a failure to start, or an uncaught error while running, is logged with its reason and exits 1;
 * - SIGINT or SIGTERM stops it gracefully (exit 0); a second signal exits at once (1).
 */

/** A flag or argument the user got wrong: exit 2, one line, no stack. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface Stoppable {
  close(): Promise<void>;
}

export interface ServiceSpec<Options> {
  /** The subcommand: `control-plane`. */
  name: string;
  flags: Record<string, FlagSpec>;
  /** Environment prefix of the flags: `CP` → `BERTH_CP_…`. */
  envPrefix: string;
  /** Extra lines under `--help`. */
  helpNotes?: string;
  /** Turns flags into start options; every error thrown here is a usage error (exit 2). */
  configure(flags: Record<string, string | string[] | boolean | undefined>, positionals: string[]): Options | Promise<Options>;
  start(options: Options, log: Logger): Promise<Stoppable>;
}

/** What the runner touches of the process; tests pass their own. */
export interface ServiceIo {
  out(line: string): void;
  err(line: string): void;
  /** Registers a handler for SIGINT and SIGTERM; returns its removal. */
  onSignal(handler: (signal: NodeJS.Signals) => void): () => void;
  /** Registers a handler for uncaught exceptions and unhandled rejections; returns its removal. */
  onUncaught(handler: (err: unknown) => void): () => void;
  exit(code: number): void;
  log?: Logger;
}

export const processIo: ServiceIo = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
  onSignal(handler) {
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
    return () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    };
  },
  onUncaught(handler) {
    process.on('uncaughtException', handler);
    process.on('unhandledRejection', handler);
    return () => {
      process.off('uncaughtException', handler);
      process.off('unhandledRejection', handler);
    };
  },
  exit: (code) => process.exit(code),
};

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0];
}

/** Runs one service until a signal; resolves to the exit code. */
export async function runService<Options>(argv: string[], spec: ServiceSpec<Options>, io: ServiceIo = processIo): Promise<number> {
  const usage = () => usageOf(spec.name, spec.flags, spec.envPrefix) + (spec.helpNotes ? `\n\n${spec.helpNotes}` : '');
  const refuse = (err: unknown) => {
    io.err(`berth ${spec.name}: ${firstLine(err)} (see berth ${spec.name} --help)`);
    return 2;
  };
  let options: Options;
  try {
    const specs = Object.fromEntries(Object.entries(spec.flags).map(([k, v]) => [k, { ...v, multiple: v.multiple ?? false }]));
    const parsed = parseFlags(argv, specs, spec.envPrefix);
    if (parsed.help) {
      io.out(usage());
      return 0;
    }
    options = await spec.configure(parsed.flags, parsed.positionals);
  } catch (err) {
    return refuse(err);
  }
  const log = io.log ?? createLogger(spec.name);
  const dropUncaught = io.onUncaught((err) => {
    log.fatal({ err }, `uncaught failure: ${firstLine(err)}; exiting`);
    io.exit(1);
  });
  let service: Stoppable;
  try {
    service = await spec.start(options, log);
  } catch (err) {
    log.error({ err }, `${spec.name} did not start`);
    io.err(`berth ${spec.name}: ${firstLine(err)}`);
    dropUncaught();
    return 1;
  }
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    const dropSignal = io.onSignal((s) => {
      dropSignal();
      resolve(s);
    });
  });
  log.info({ signal }, 'stopping');
  const dropSecond = io.onSignal((s) => {
    log.warn({ signal: s }, 'second signal: exiting without finishing the stop');
    io.exit(1);
  });
  try {
    await service.close();
    return 0;
  } catch (err) {
    log.error({ err }, `${spec.name} did not stop cleanly`);
    return 1;
  } finally {
    dropSecond();
    dropUncaught();
  }
}
