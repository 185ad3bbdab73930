import { writeSync } from 'node:fs';
import { newOpId, REDACTED_CENSOR, REDACTED_KEYS } from '../common/log-fields.js';

export { newOpId };

/**
 * The gateway's logger (issue 11): the JSON lines `common/log.ts`'s pino logger writes, byte for byte
 * (test/unit/gateway-log.test.ts holds the two side by side), without loading pino. The gateway
 * bundle takes this module in place of common/log.js (scripts/bundle-gateway.ts); everywhere else,
 * the daemon's in-process tests included, the daemon logs through pino. pino brings 29 files, its
 * worker-thread transports (worker_threads, assert, os) and part of Node's ES module loader for
 * transports a gateway never starts: ≈ 0.7 MiB resident (edge-daemon/README.md, Ninth pass).
 *
 * What it keeps of pino, as `createLogger` configures it: levels (`BERTH_LOG_LEVEL`, default
 * `info`), `{"level":N,"time":ms,"component":…, child bindings…, fields…, "msg":…}` in that order,
 * the `err` field through pino's error serializer (type, message and stack with their causes, own
 * fields, nested errors), the same redaction (`REDACTED_KEYS` at the top level and one level down,
 * in fields and bindings), synchronous writes to fd 1. What it leaves out, unused by the daemon:
 * printf-style arguments, transports, custom levels, `level` changes after creation, `flush`.
 */

/** What the daemon's code calls on a logger; pino's `Logger` has all of it, so tests pass pino's. */
export interface Logger {
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  child(bindings: Record<string, unknown>): Logger;
}
export type LogFn = (objOrMsg: object | string, msg?: string) => void;

export interface GatewayLogOptions {
  /** pino's level names; default `BERTH_LOG_LEVEL`, else `info`. */
  level?: string;
  /** Where each line goes (default: written synchronously to fd 1, as pino's default destination). */
  write?: (line: string) => void;
  /** Milliseconds since the epoch for `time` (default `Date.now`). */
  now?: () => number;
}

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;
type LevelName = keyof typeof LEVELS;

// common/log.ts redacts REDACTED_KEYS at the top level and one level down (`key`, `*.key`; its
// `headers.authorization` is one of those)
const REDACTED = JSON.stringify(REDACTED_CENSOR);
const isRedacted = (key: string): boolean => (REDACTED_KEYS as readonly string[]).includes(key);

/** The gateway's counterpart of common/log.ts's `createLogger` (same name: the bundle swaps the module). */
export function createLogger(component: string, options: GatewayLogOptions = {}): Logger {
  const threshold = levelValue(options.level ?? process.env.BERTH_LOG_LEVEL ?? 'info');
  const sink: Sink = { threshold, write: options.write ?? writeStdout, now: options.now ?? Date.now };
  return new GatewayLogger(sink, bindingsText({ component }));
}

interface Sink {
  threshold: number;
  write: (line: string) => void;
  now: () => number;
}

class GatewayLogger implements Logger {
  readonly trace: LogFn;
  readonly debug: LogFn;
  readonly info: LogFn;
  readonly warn: LogFn;
  readonly error: LogFn;
  readonly fatal: LogFn;

  constructor(
    private readonly sink: Sink,
    private readonly bindings: string,
  ) {
    const fn = (name: LevelName): LogFn => (LEVELS[name] < sink.threshold ? noop : (o, msg) => this.write(LEVELS[name], o, msg));
    this.trace = fn('trace');
    this.debug = fn('debug');
    this.info = fn('info');
    this.warn = fn('warn');
    this.error = fn('error');
    this.fatal = fn('fatal');
  }

  child(bindings: Record<string, unknown>): Logger {
    return new GatewayLogger(this.sink, this.bindings + bindingsText(bindings));
  }

  /** pino's `LOG` then `write` then `asJson`, for one object (or an Error, or a message alone) and a message. */
  private write(level: number, o: object | string, message: string | undefined): void {
    let fields: Record<string, unknown>;
    let msg: unknown = message;
    if (typeof o !== 'object') {
      msg = o;
      fields = {};
    } else if (o instanceof Error) {
      fields = { err: o };
      if (msg === undefined) msg = o.message;
    } else {
      fields = o as Record<string, unknown>;
      const err = fields.err as { message?: unknown } | undefined;
      if (msg === undefined && fields.msg === undefined && err) msg = err.message;
    }
    let line = `{"level":${level},"time":${this.sink.now()}${this.bindings}`;
    for (const key in fields) {
      if (!Object.prototype.hasOwnProperty.call(fields, key) || fields[key] === undefined) continue;
      const text = fieldText(key, fields[key]);
      if (text !== undefined) line += `,${JSON.stringify(key)}:${text}`;
    }
    if (msg !== undefined && typeof msg !== 'function') {
      const text = valueText('msg', msg);
      line += `,"msg":${text}`;
    }
    this.sink.write(line + '}\n');
  }
}

function noop(): void {}

function levelValue(level: string): number {
  const name = level.toLowerCase();
  if (Object.prototype.hasOwnProperty.call(LEVELS, name)) return LEVELS[name as LevelName];
  if (level === 'silent') return Infinity;
  // pino's words, so a bad BERTH_LOG_LEVEL reads the same on a gateway as elsewhere
  throw new Error(`default level:${level} must be included in custom levels`);
}

/** A child's (or the base's) bindings as pino writes them: `,"key":value` each, serialized and redacted like fields. */
function bindingsText(bindings: Record<string, unknown>): string {
  let out = '';
  for (const key in bindings) {
    const value = bindings[key];
    if (key === 'level' || key === 'serializers' || key === 'formatters' || key === 'customLevels') continue;
    if (!Object.prototype.hasOwnProperty.call(bindings, key) || value === undefined) continue;
    const text = valueText(key, key === 'err' ? serializeError(value) : value);
    if (text !== undefined) out += `,${JSON.stringify(key)}:${text}`;
  }
  return out;
}

/** One field of a log call: pino's `err` serializer, then by type as pino's `asJson` does. */
function fieldText(key: string, raw: unknown): string | undefined {
  let value = key === 'err' ? serializeError(raw) : raw;
  if (typeof value === 'undefined' || typeof value === 'function') return undefined;
  if (typeof value === 'number' && !Number.isFinite(value)) value = null;
  return valueText(key, value);
}

/**
 * A value as pino's redacting stringifier writes it: a redacted key's value replaced whatever it is;
 * any other object copied one level (same prototype, own enumerable keys) with its redacted keys
 * replaced, then `JSON.stringify` (undefined: the field is left out).
 */
function valueText(key: string, value: unknown): string | undefined {
  if (isRedacted(key)) return REDACTED;
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Date) return stringify(value);
  const copy = Object.create(Object.getPrototypeOf(value) as object | null) as Record<string, unknown>;
  for (const k in value) if (Object.prototype.hasOwnProperty.call(value, k)) copy[k] = (value as Record<string, unknown>)[k];
  for (const k of REDACTED_KEYS) if (Object.prototype.hasOwnProperty.call(copy, k)) copy[k] = REDACTED_CENSOR;
  return stringify(copy);
}

/** pino's `JSON.stringify` with its last resort; what needs its safe-stable-stringify (a cycle, a BigInt) is not something the daemon logs. */
function stringify(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    return '"[unable to serialize, circular reference is too complex to analyze]"';
  }
}

type ErrorLike = { message: string; stack?: unknown; cause?: unknown; errors?: unknown; constructor?: unknown; name?: unknown };
const isErrorLike = (v: unknown): v is ErrorLike => !!v && typeof (v as { message?: unknown }).message === 'string';

/** pino-std-serializers' `err`: type, message and stack with their causes, aggregated errors, then the error's other fields. */
function serializeError(err: unknown, seen: Set<object> = new Set()): unknown {
  if (!isErrorLike(err)) return err;
  seen.add(err);
  const out: Record<string, unknown> = {
    type: Object.prototype.toString.call(err.constructor) === '[object Function]' ? (err.constructor as { name: string }).name : err.name,
    message: messageWithCauses(err, new Set(), false),
    stack: stackWithCauses(err, new Set()),
  };
  if (Array.isArray(err.errors)) out.aggregateErrors = err.errors.map((e: unknown) => serializeError(e, seen));
  for (const key in err) {
    // pino's serialized error inherits a `raw` accessor and Object.prototype's members: those keys are never copied
    if (out[key] !== undefined || key === 'raw') continue;
    const value = (err as unknown as Record<string, unknown>)[key];
    if (isErrorLike(value)) {
      if (key !== 'cause' && !seen.has(value)) out[key] = serializeError(value, seen);
    } else out[key] = value;
  }
  seen.delete(err);
  return out;
}

function causeOf(err: ErrorLike): ErrorLike | undefined {
  const cause = typeof err.cause === 'function' ? (err.cause as () => unknown)() : err.cause;
  return isErrorLike(cause) ? cause : undefined;
}

function messageWithCauses(err: ErrorLike, seen: Set<ErrorLike>, skip: boolean): string {
  const message = skip ? '' : err.message || '';
  if (seen.has(err)) return message + ': ...';
  const cause = causeOf(err);
  if (!cause) return message;
  seen.add(err);
  const verrorStyle = typeof err.cause === 'function';
  return message + (verrorStyle ? '' : ': ') + messageWithCauses(cause, seen, verrorStyle);
}

function stackWithCauses(err: ErrorLike, seen: Set<ErrorLike>): string {
  const stack = (err.stack as string) || '';
  if (seen.has(err)) return stack + '\ncauses have become circular...';
  const cause = causeOf(err);
  if (!cause) return stack;
  seen.add(err);
  return stack + '\ncaused by: ' + stackWithCauses(cause, seen);
}

/** pino's default destination writes synchronously to fd 1; a full pipe (EAGAIN) is waited out the way sonic-boom does. */
function writeStdout(line: string): void {
  let buf = Buffer.from(line);
  while (buf.length > 0) {
    try {
      buf = buf.subarray(writeSync(1, buf));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
}
