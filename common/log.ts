import { randomUUID } from 'node:crypto';
import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * One logger per component instance (never a module-level singleton), JSON to stdout or a given
 * destination. Secrets are redacted by key name so a token never reaches a log even by accident.
 */
export function createLogger(component: string, options: LoggerOptions = {}): Logger {
  return pino({
    level: process.env.BERTH_LOG_LEVEL ?? 'info',
    base: { component },
    redact: {
      paths: ['token', '*.token', 'authorization', '*.authorization', 'password', '*.password', 'privateKey', '*.privateKey', 'headers.authorization'],
      censor: '[redacted]',
    },
    ...options,
  });
}

/** A short id that ties together the log lines of one request or one operation. */
export function newOpId(): string {
  return randomUUID().slice(0, 8);
}
