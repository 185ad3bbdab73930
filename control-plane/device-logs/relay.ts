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
  /** Set when a peer ended it: the end is not told back (peers below). */
  endedByPeer = false;
  private readonly enders = new Set<(reason: string) => void>();

  /** `origin`: the worker whose operator asked (peers below); null when it is this process. */
  constructor(readonly deviceId: string, readonly spec: LogRequest, private readonly write: (ndjson: string) => void, readonly origin: number | null = null) {}

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

/**
 * With `--workers N` (control-plane/cluster.ts) the operator's request, the gateway's long poll,
 * its claim and its upload may each reach a different worker. Every request opened in one worker
 * is announced to the others, which keep a stand-in for it: the long poll there sees it waiting,
 * the claim there takes it (and says so to all), the upload there forwards each line to the worker
 * whose operator asked. An end anywhere ends it everywhere. Messages go through the primary, which
 * stamps `from` (the sender's worker) and delivers to `to` alone when it is set.
 */
export type LogPeerMessage =
  | { berth: 'logs'; kind: 'open'; deviceId: string; spec: LogRequest }
  | { berth: 'logs'; kind: 'claimed'; id: string }
  | { berth: 'logs'; kind: 'line'; to: number; id: string; line: string }
  | { berth: 'logs'; kind: 'end'; to?: number; id: string; reason: string }
  /** From the primary: worker `from` is gone; the requests its operators opened end. */
  | { berth: 'logs'; kind: 'gone' };

export interface LogPeers {
  send(msg: LogPeerMessage): void;
}

export class LogRelay {
  private readonly byDevice = new Map<string, Map<string, LogRequestState>>();
  private readonly byId = new Map<string, LogRequestState>();
  /** Other workers of this control plane, when there are (cluster-relay.ts sets it). */
  peers: LogPeers | null = null;

  open(deviceId: string, spec: Omit<LogRequest, 'id'>, write: (ndjson: string) => void): LogRequestState {
    const mine = this.byDevice.get(deviceId);
    if (mine && mine.size >= LOG_REQUESTS_PER_DEVICE) throw new TooManyLogRequests(`${mine.size} log requests are open for this device already (at most ${LOG_REQUESTS_PER_DEVICE})`);
    const state = this.add(new LogRequestState(deviceId, { ...spec, id: `log_${randomUUID()}` }, write));
    if (this.peers) {
      const peers = this.peers;
      peers.send({ berth: 'logs', kind: 'open', deviceId, spec: state.spec });
      state.onEnd((reason) => peers.send({ berth: 'logs', kind: 'end', id: state.spec.id, reason }));
    }
    return state;
  }

  private add(state: LogRequestState): LogRequestState {
    const { deviceId } = state;
    let mine = this.byDevice.get(deviceId);
    if (!mine) this.byDevice.set(deviceId, (mine = new Map()));
    mine.set(state.spec.id, state);
    this.byId.set(state.spec.id, state);
    const set = mine;
    state.onEnd(() => {
      set.delete(state.spec.id);
      this.byId.delete(state.spec.id);
      if (set.size === 0 && this.byDevice.get(deviceId) === set) this.byDevice.delete(deviceId);
    });
    return state;
  }

  /** A message from another worker; returns the device whose long poll must look again, if any. */
  receive(msg: LogPeerMessage, from: number): string | null {
    const peers = this.peers;
    if (!peers) return null;
    switch (msg.kind) {
      case 'open': {
        if (this.byId.has(msg.spec.id)) return null;
        const id = msg.spec.id;
        const stand = this.add(new LogRequestState(msg.deviceId, msg.spec, (line) => peers.send({ berth: 'logs', kind: 'line', to: from, id, line: line.replace(/\n$/, '') }), from));
        stand.onEnd((reason) => stand.endedByPeer || peers.send({ berth: 'logs', kind: 'end', to: from, id, reason }));
        return msg.deviceId;
      }
      case 'claimed': {
        const state = this.byId.get(msg.id);
        if (state) state.claimed = true;
        return null;
      }
      case 'line':
        this.byId.get(msg.id)?.relay(msg.line);
        return null;
      case 'end':
        this.endByPeer(this.byId.get(msg.id), msg.reason);
        return null;
      case 'gone':
        for (const state of [...this.byId.values()]) if (state.origin === from) this.endByPeer(state, 'the control plane worker that asked stopped');
        return null;
    }
  }

  private endByPeer(state: LogRequestState | undefined, reason: string): void {
    if (!state) return;
    // A stand-in ended by its origin says nothing back; the origin's own request tells the others.
    if (state.origin !== null) state.endedByPeer = true;
    state.end(reason);
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
      this.peers?.send({ berth: 'logs', kind: 'claimed', id: s.spec.id });
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
