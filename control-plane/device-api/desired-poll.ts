import { desiredQuery } from '../../protocol/device.js';
import { LOG_REQUESTS_HEADER } from '../../protocol/device-logs.js';
import type { ControlPlaneContext } from '../context.js';
import { relayOf } from '../device-logs/relay.js';
import type { DesiredDocumentRow } from '../db/point-reads.js';
import { getDesiredDocument } from '../devices/desired.js';
import type { Departure, WakeReason } from '../devices/desired-waiters.js';
import { validate } from '../http.js';

/**
 * A device's desired-state poll (GET /v1/device/desired), answered once its device is known: the
 * one decision both ways of serving it share, the Hono route (routes.ts) and node:http ahead of
 * Hono (desired-direct.ts), so the two cannot drift apart. What is HTTP-framework specific (reading
 * the query, the client's departure, writing the answer) stays with each.
 */

/** What the poll answers: 200 with the document, 204 (nothing assigned) or 304 (unchanged since If-None-Match). */
export type PollAnswer = { status: 200; headers: Record<string, string>; body: { document: string } } | { status: 204 | 304; headers: Record<string, string> };

/** `?wait=` as the route declares it (protocol/device.ts); throws the 400 naming it. */
export function waitOf(query: Record<string, string>): number {
  return validate(desiredQuery, query, 'query').wait ?? 0;
}

/**
 * How long a long poll waits at most: the wait asked (capped), less up to a fifth at random. Polls
 * opened together (a fleet reconnecting after a restart, a site's gateways powered on at once)
 * would otherwise expire and renew together every wait, a herd that never spreads out; the
 * shortening keeps every answer within the client's own deadline.
 */
export function longPollMs(waitSec: number, maxWaitSec: number, random: () => number = Math.random): number {
  return Math.min(waitSec, maxWaitSec) * 1000 * (1 - 0.2 * random());
}

function etagOf(sequence: number | null): string | null {
  return sequence === null ? null : `"${sequence}"`;
}

/** A poll begun: its deadline, what tells it that its client left, its waiter (null when it does not wait). */
export interface PollStart {
  deadline: number;
  signal: Departure | undefined;
  waiter: { woken: Promise<WakeReason>; leave(): void } | null;
}

/**
 * Begins the poll of `deviceId`: its waiter is entered before its sequence is read, so a change
 * committed after the read wakes it (after commit in this process, through the change feed from
 * another one). `departed` is asked only when the poll waits, and gives what tells it that the
 * client went away (an AbortSignal, or desired-direct.ts's lighter one). Whoever begins a poll and
 * does not answer it leaves its waiter.
 */
export function startPoll(ctx: ControlPlaneContext, deviceId: string, waitSec: number, departed: () => Departure): PollStart {
  const now = Date.now();
  const deadline = now + longPollMs(waitSec, ctx.config.maxWaitSec);
  if (deadline <= now) return { deadline, signal: undefined, waiter: null };
  // Only a poll that waits needs to learn that its client left.
  const signal = departed();
  return { deadline, signal, waiter: ctx.waiters.enter(deviceId, deadline - now, signal) };
}

/**
 * The poll of `deviceId` (already authenticated): waits up to `waitSec` for its desired state to
 * differ from the ETag it sent (`ifNoneMatch`), then answers. `begun`: the poll already started
 * (startPoll) and its sequence read since (desired-direct.ts reads it with the device row).
 */
export async function answerPoll(ctx: ControlPlaneContext, deviceId: string, ifNoneMatch: string | undefined, waitSec: number, departed: () => Departure, begun?: { start: PollStart; sequence: number | null }): Promise<PollAnswer> {
  ctx.seen.touch(deviceId, ctx.now().getTime());
  const known = ifNoneMatch?.trim() || null;
  const { deadline, signal, waiter: first } = begun?.start ?? startPoll(ctx, deviceId, waitSec, departed);
  // A log request waiting for this device answers the poll at once (issue 15): the gateway never accepts connections.
  const logs = relayOf(ctx);
  // Entered before each read of the sequence. Waiting costs no reads.
  let waiter = first;
  let sequence: number | null;
  // After a wake-up the row its document is signed from is read instead of the sequence alone:
  // a woken poll mostly answers with the document, and one read serves both.
  let row: DesiredDocumentRow | undefined;
  try {
    sequence = begun ? begun.sequence : await ctx.reads.desiredSequence(deviceId);
    while (waiter && etagOf(sequence) === known && Date.now() < deadline && !signal?.aborted && !ctx.waiters.closed && logs.unclaimed(deviceId) === 0) {
      // Run out with no wake-up, nothing of this device committed since the read: the answer is
      // the one read (a renewal of a waiting poll, ~1,700/s at 100,000 devices, costs no read
      // here). A change in another process wakes it up to a feed tick late: its next poll reads it.
      if ((await waiter.woken) !== 'changed') {
        waiter = null;
        break;
      }
      waiter = Date.now() < deadline ? ctx.waiters.enter(deviceId, deadline - Date.now(), signal) : null;
      row = await ctx.reads.desiredDocument(deviceId);
      sequence = row ? row.sequence : null;
    }
  } finally {
    waiter?.leave();
  }
  const pendingLogs = logs.unclaimed(deviceId);
  const headers: Record<string, string> = pendingLogs ? { [LOG_REQUESTS_HEADER]: String(pendingLogs) } : {};
  if (sequence === null) return { status: 204, headers };
  if (known !== null && etagOf(sequence) === known) return { status: 304, headers: { ETag: known, ...headers } };
  const doc = await getDesiredDocument(ctx, deviceId, row);
  if (!doc) return { status: 204, headers };
  return { status: 200, headers: { ETag: etagOf(doc.sequence) as string, 'Cache-Control': 'no-store', ...headers }, body: { document: doc.document } };
}
