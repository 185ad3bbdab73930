import type { ControlPlaneContext } from './context.js';
import type { ControlPlaneEvents } from './events.js';
import { relayOf, type LogPeerMessage } from './device-logs/relay.js';

/**
 * What one worker of `--workers N` keeps in memory that another worker's change makes stale, told
 * to every other worker through the primary (cluster IPC):
 * - 'signing-keys-changed': each worker signs with the active key and verifies with the unrevoked
 *   ones from memory, and remembers verified device tokens; a rotation or revocation made through
 *   one worker makes the others reload their keys and forget what they verified at once, where the
 *   database watch every process runs (keys-watch.ts) would take up to a second.
 * - 'device-revoked': the device's long poll, wherever it waits, answers now (and its next request
 *   gets 403), as on the worker that revoked it.
 *
 * The other events need no relay: every process records its own devices' reports, enrollments and
 * label changes into their campaigns (campaigns/scheduler.ts), the lease holder advances campaigns
 * from the database, and the change feed wakes long polls in every process (devices/change-feed.ts).
 * A notice only updates memory here; it is not emitted again, so nothing is recorded twice.
 *
 * Device logs on demand pass between workers too (device-logs/relay.ts, LogPeerMessage): the
 * operator's request, the gateway's long poll, claim and upload may each reach another worker.
 */
export const NOTICES = ['signing-keys-changed', 'device-revoked'] as const;
type Notice = (typeof NOTICES)[number];

export interface ClusterNotice<K extends Notice = Notice> {
  berth: 'notice';
  name: K;
  payload: ControlPlaneEvents[K];
}

export function isClusterNotice(msg: unknown): msg is ClusterNotice {
  const m = msg as Partial<ClusterNotice> | null;
  return typeof m === 'object' && m !== null && m.berth === 'notice' && (NOTICES as readonly string[]).includes(m.name as string) && typeof m.payload === 'object' && m.payload !== null;
}

function isLogMessage(msg: unknown): msg is LogPeerMessage & { from: number } {
  const m = msg as { berth?: unknown; kind?: unknown; from?: unknown } | null;
  return typeof m === 'object' && m !== null && m.berth === 'logs' && typeof m.kind === 'string' && typeof m.from === 'number';
}

/** How a worker talks to its primary: `process.send` and `process.on('message')` in cluster.ts. */
export interface RelayLink {
  send(msg: ClusterNotice | LogPeerMessage): void;
  onMessage(fn: (msg: unknown) => void): () => void;
}

type RelayCtx = Pick<ControlPlaneContext, 'events' | 'keys' | 'deviceTokens' | 'waiters' | 'log'>;

/** Sends this worker's notices and log traffic out and applies the others' here; returns the stop. */
export function relayNotices(ctx: RelayCtx, link: RelayLink): () => void {
  const offs = NOTICES.map((name) => ctx.events.on(name, (payload) => link.send({ berth: 'notice', name, payload } as ClusterNotice)));
  const logs = relayOf(ctx);
  logs.peers = { send: (msg) => link.send(msg) };
  const offMessage = link.onMessage((msg) => {
    if (isClusterNotice(msg)) apply(ctx, msg);
    else if (isLogMessage(msg)) {
      // A request opened on another worker: this worker's long poll for the device answers now.
      const wake = logs.receive(msg, msg.from);
      if (wake) ctx.waiters.wake(wake);
    }
  });
  return () => {
    for (const off of offs) off();
    offMessage();
    logs.peers = null;
  };
}

function apply(ctx: RelayCtx, msg: ClusterNotice): void {
  if (msg.name === 'signing-keys-changed') {
    ctx.deviceTokens.clear();
    ctx.keys.load().then(
      // Again after the reload: a token verified meanwhile against the old keys is dropped too.
      () => ctx.deviceTokens.clear(),
      (err: unknown) => ctx.log.error({ err }, 'reloading the signing keys another worker changed failed'),
    );
  } else {
    const { deviceId } = msg.payload as ControlPlaneEvents['device-revoked'];
    if (typeof deviceId === 'string') ctx.waiters.wake(deviceId);
  }
}
