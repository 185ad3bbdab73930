import { randomUUID } from 'node:crypto';
import { LOG_BYTES_CAP, LOG_REQUESTS_PER_DEVICE, type LogRequest } from '../../protocol/device-logs.js';

/**
 * Log requests in flight, in memory only: a log line passes through and is gone. A request lives
 * while its operator is connected: it ends when the gateway's upload ends (not following), when
 * the operator leaves, when it reaches the byte cap, or when no gateway claims it in time.
 */
export class LogRequestState {
  claimed = false;
  ended: string | null = null;
  bytes = 0;
  private readonly enders = new Set<(reason: string) => void>();

  constructor(readonly deviceId: string, readonly spec: LogRequest, private readonly write: (ndjson: string) => void) {}

  /** Passes one NDJSON line on; false once the request ended (the gateway should stop). */
  relay(line: string): boolean {
    if (this.ended) return false;
    this.bytes += Buffer.byteLength(line) + 1;
    if (this.bytes > LOG_BYTES_CAP) {
      this.end(`size cap of ${LOG_BYTES_CAP} bytes reached; ask again with --tail or --since`);
      return false;
    }
    this.write(line + '\n');
    return true;
  }

  onEnd(fn: (reason: string) => void): void {
    if (this.ended) fn(this.ended);
    else this.enders.add(fn);
  }

  end(reason: string): void {
    if (this.ended) return;
    this.ended = reason;
    for (const fn of this.enders) fn(reason);
    this.enders.clear();
  }
}

export class TooManyLogRequests extends Error {}

export class LogRelay {
  private readonly byDevice = new Map<string, Map<string, LogRequestState>>();

  open(deviceId: string, spec: Omit<LogRequest, 'id'>, write: (ndjson: string) => void): LogRequestState {
    let mine = this.byDevice.get(deviceId);
    if (mine && mine.size >= LOG_REQUESTS_PER_DEVICE) throw new TooManyLogRequests(`${mine.size} log requests are open for this device already (at most ${LOG_REQUESTS_PER_DEVICE})`);
    if (!mine) this.byDevice.set(deviceId, (mine = new Map()));
    const state = new LogRequestState(deviceId, { ...spec, id: `log_${randomUUID()}` }, write);
    mine.set(state.spec.id, state);
    state.onEnd(() => {
      mine.delete(state.spec.id);
      if (mine.size === 0 && this.byDevice.get(deviceId) === mine) this.byDevice.delete(deviceId);
    });
    return state;
  }

  unclaimed(deviceId: string): number {
    let n = 0;
    for (const s of this.byDevice.get(deviceId)?.values() ?? []) if (!s.claimed) n++;
    return n;
  }

  claim(deviceId: string): LogRequest[] {
    const out: LogRequest[] = [];
    for (const s of this.byDevice.get(deviceId)?.values() ?? []) {
      if (s.claimed) continue;
      s.claimed = true;
      out.push(s.spec);
    }
    return out;
  }

  find(deviceId: string, id: string): LogRequestState | undefined {
    return this.byDevice.get(deviceId)?.get(id);
  }

  endAll(reason: string): void {
    for (const mine of [...this.byDevice.values()]) for (const s of [...mine.values()]) s.end(reason);
  }
}

/** One relay per control plane (keyed by its context), without widening the shared context. */
const relays = new WeakMap<object, LogRelay>();
export function relayOf(ctx: object): LogRelay {
  let r = relays.get(ctx);
  if (!r) relays.set(ctx, (r = new LogRelay()));
  return r;
}
