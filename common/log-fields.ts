import { randomUUID } from 'node:crypto';

/**
 * What every Berth log line shares, without pino: common/log.ts builds its pino logger from it and
 * the gateway's pino-free logger (edge-daemon/gateway-log.ts) writes the same lines from it.
 */

/** Field names whose values never reach a log: at the top level of a line and one level down. */
export const REDACTED_KEYS = ['token', 'authorization', 'password', 'privateKey'] as const;
export const REDACTED_CENSOR = '[redacted]';

/** A short id that ties together the log lines of one request or one operation. */
export function newOpId(): string {
  return randomUUID().slice(0, 8);
}
