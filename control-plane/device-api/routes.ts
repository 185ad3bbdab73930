import { Hono } from 'hono';
import { parseImageRef } from '../../manifests/image-ref.js';
import type { Manifest } from '../../manifests/model.js';
import { desiredQuery } from '../../protocol/device.js';
import { deviceReport } from '../../protocol/device.js';
import { type PullAccess } from '../../protocol/tokens.js';
import { requireDevice } from './device-auth.js';
import type { ControlPlaneContext } from '../context.js';
import type { ImageRegistry } from '../manifests/registry.js';
import { desiredRelease, getDesiredDocument } from '../devices/desired.js';
import { HttpError, jsonBody, queryOf, type AppEnv } from '../http.js';
import { mintPullToken } from './pull-tokens.js';
import { ReportWriter } from './report-writer.js';
import { relayOf } from '../device-logs/relay.js';
import { LOG_REQUESTS_HEADER } from '../../protocol/device-logs.js';

/** Pull scopes for the images of the given manifests, grouped by proxy repository, digests pinned. */
export async function accessFor(registry: ImageRegistry, specs: Manifest[]): Promise<PullAccess> {
  const byName = new Map<string, Set<string>>();
  for (const spec of specs) {
    for (const s of Object.values(spec.services)) {
      const ref = parseImageRef(s.image);
      if (!ref.digest) continue;
      const name = await registry.repositoryName(ref);
      let set = byName.get(name);
      if (!set) byName.set(name, (set = new Set()));
      set.add(ref.digest);
    }
  }
  return [...byName].map(([name, digests]) => ({ type: 'repository' as const, name, actions: ['pull'], digests: [...digests].sort() }));
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

/** What a device calls with its own token: it reads and writes its own state only (the id comes from the token). */
export function deviceApiRoutes(ctx: ControlPlaneContext) {
  const app = new Hono<AppEnv>();
  app.use('*', requireDevice());

  app.get('/desired', async (c) => {
    const q = queryOf(c, desiredQuery);
    const deviceId = c.var.device.id;
    ctx.seen.touch(deviceId, ctx.now().getTime());
    const known = c.req.header('if-none-match')?.trim() || null;
    const deadline = Date.now() + longPollMs(q.wait ?? 0, ctx.config.maxWaitSec);
    // Only a poll that waits needs to learn that its client left: the signal costs an AbortController per request.
    const signal = deadline > Date.now() ? c.req.raw.signal : undefined;
    // A log request waiting for this device answers the poll at once (issue 15): the gateway never accepts connections.
    const logs = relayOf(ctx);
    // Entered before each read of the sequence: a change committed after the read wakes this waiter
    // (after commit in this process, through the change feed from another one). Waiting costs no reads.
    let waiter = deadline > Date.now() ? ctx.waiters.enter(deviceId, deadline - Date.now(), signal) : null;
    let sequence: number | null;
    try {
      sequence = await ctx.reads.desiredSequence(deviceId);
      while (waiter && etagOf(sequence) === known && Date.now() < deadline && !signal?.aborted && !ctx.waiters.closed && logs.unclaimed(deviceId) === 0) {
        // Run out with no wake-up, nothing of this device committed since the read: the answer is
        // the one read (a renewal of a waiting poll, ~1,700/s at 100,000 devices, costs no read
        // here). A change in another process wakes it up to a feed tick late: its next poll reads it.
        if ((await waiter.woken) !== 'changed') {
          waiter = null;
          break;
        }
        waiter = Date.now() < deadline ? ctx.waiters.enter(deviceId, deadline - Date.now(), signal) : null;
        sequence = await ctx.reads.desiredSequence(deviceId);
      }
    } finally {
      waiter?.leave();
    }
    const pendingLogs = logs.unclaimed(deviceId);
    const logHeader: Record<string, string> = pendingLogs ? { [LOG_REQUESTS_HEADER]: String(pendingLogs) } : {};
    if (sequence === null) return c.body(null, 204, logHeader);
    if (known !== null && etagOf(sequence) === known) return c.body(null, 304, { ETag: known, ...logHeader });
    const doc = await getDesiredDocument(ctx, deviceId);
    if (!doc) return c.body(null, 204, logHeader);
    return c.json({ document: doc.document }, 200, { ETag: etagOf(doc.sequence) as string, 'Cache-Control': 'no-store', ...logHeader });
  });

  app.post('/pull-token', async (c) => {
    ctx.seen.touch(c.var.device.id, ctx.now().getTime());
    const rel = await desiredRelease(ctx.db, c.var.device.id);
    const specs = rel ? [rel.manifest.spec, ...(rel.previous ? [rel.previous.spec] : [])] : [];
    let access: PullAccess;
    try {
      access = await accessFor(ctx.registry, specs);
    } catch (err) {
      throw new HttpError(503, 'registry-proxy-unavailable', `cannot map images to the registry proxy: ${(err as Error).message}`);
    }
    const t = await mintPullToken(ctx.keys, `device:${c.var.device.id}`, access, ctx.config.pullTokenTtlSec, ctx.now());
    return c.json({ token: t.token, expiresAt: t.expiresAt, registryProxy: ctx.config.registryProxy });
  });

  // Batched with the reports that arrive meanwhile (report-writer.ts); answered after the commit.
  const reports = new ReportWriter(ctx);
  app.post('/report', async (c) => {
    const report = await jsonBody(c, deviceReport);
    const deviceId = c.var.device.id;
    const now = ctx.now().getTime();
    ctx.seen.touch(deviceId, now);
    const out = await reports.submit(deviceId, report, now);
    return c.json({ accepted: out.accepted }, 202);
  });

  return app;
}
