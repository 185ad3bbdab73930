import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { REDACTED_CENSOR, REDACTED_KEYS } from './log-fields.js';

export type { Logger };
export { newOpId } from './log-fields.js';

/**
 * One logger per component instance (never a module-level singleton), JSON to stdout or a given
 * destination. Secrets are redacted by key name so a token never reaches a log even by accident.
 */
export function createLogger(component: string, options: LoggerOptions = {}, destination?: DestinationStream): Logger {
  const config: LoggerOptions = {
    level: process.env.BERTH_LOG_LEVEL ?? 'info',
    base: { component },
    redact: {
      paths: [...REDACTED_KEYS.flatMap((key) => [key, `*.${key}`]), 'headers.authorization'],
      censor: REDACTED_CENSOR,
    },
    ...options,
  };
  return destination ? pino(config, destination) : pino(config);
}
