import { eq } from 'drizzle-orm';
import { Hono } from 'hono';
import { parseDuration } from '../../common/grammar.js';
import { LineBuffer } from '../../common/lines.js';
import { LOG_TAIL_DEFAULT, logLine, logsQuery } from '../../protocol/device-logs.js';
import type { ControlPlaneContext } from '../context.js';
import { devices } from '../db/schema.js';
import { requireDevice } from '../device-api/device-auth.js';
import { HttpError, queryOf, type AppEnv } from '../http.js';
import { requireRole } from '../operators/auth.js';
import { relayOf, TooManyLogRequests } from './relay.js';

/** A request no gateway claims within this ends (the gateway is offline or not polling). */
const CLAIM_WITHIN_MS = 30_000;
/** Without follow, the logs asked for come at once; anything longer is a stuck upload. */
const READ_FOR_MS = 120_000;
/** Following ends after an hour; ask again to go on. */
const FOLLOW_FOR_MS = 3600_000;

/**
 * `GET /v1/devices/:serial/logs` (release-manager and admin: logs can carry what a service prints
 * about its users and its secrets, so a viewer may not read them). The answer streams NDJSON
 * lines as the gateway uploads them; they are never stored. Every read is audited.
 */
export function operatorLogRoutes(ctx: ControlPlaneContext) {
  const app = new Hono<AppEnv>();
  app.get('/:serial/logs', requireRole('release-manager'), async (c) => {
    const q = queryOf(c, logsQuery);
    const serial = c.req.param('serial');
    const d = (await ctx.db.select({ id: devices.id, status: devices.status }).from(devices).where(eq(devices.serial, serial)).limit(1))[0];
    if (!d) throw new HttpError(404, 'unknown-device', `no device ${serial}`);
    if (d.status !== 'enrolled') throw new HttpError(409, 'device-not-enrolled', `device ${serial} is ${d.status}: it has no logs to send`);
    const now = ctx.now().getTime();
    const follow = q.follow === 'true';
    const spec = {
      service: q.service ?? null,
      // Neither tail nor since: the last 100 lines, as `berth logs` says.
      tail: q.tail ?? (q.since ? null : LOG_TAIL_DEFAULT),
      since: q.since ? Math.floor((now - parseDuration(q.since, 'since')) / 1000) : null,
      follow,
    };
    const encoder = new TextEncoder();
    let out!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => void (out = controller),
      cancel: () => state.end('the operator left'),
    });
    let state: ReturnType<ReturnType<typeof relayOf>['open']>;
    try {
      state = relayOf(ctx).open(d.id, spec, (line) => out.enqueue(encoder.encode(line)));
    } catch (err) {
      if (err instanceof TooManyLogRequests) throw new HttpError(429, 'too-many-log-requests', err.message);
      throw err;
    }
    await ctx.write((tx) => ctx.audit(tx, { actor: c.var.actor, action: 'device.logs', target: serial, after: { service: spec.service, tail: spec.tail, since: q.since ?? null, follow } }));
    const timers = [
      setTimeout(() => state.claimed || state.end(`the gateway did not pick the request up within ${CLAIM_WITHIN_MS / 1000} s (is it online?)`), CLAIM_WITHIN_MS),
      setTimeout(() => state.end(follow ? 'followed for an hour; ask again to go on' : `the gateway did not finish within ${READ_FOR_MS / 1000} s`), follow ? FOLLOW_FOR_MS : READ_FOR_MS),
    ];
    for (const t of timers) t.unref();
    c.req.raw.signal.addEventListener('abort', () => state.end('the operator left'));
    state.onEnd((reason) => {
      for (const t of timers) clearTimeout(t);
      try {
        if (reason !== 'done' && reason !== 'the operator left') out.enqueue(encoder.encode(JSON.stringify({ end: reason }) + '\n'));
        out.close();
      } catch {
        // The operator's side is closed already.
      }
    });
    // The gateway's long poll answers now, naming the request.
    ctx.waiters.wake(d.id);
    return new Response(body, { status: 200, headers: { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' } });
  });
  return app;
}

/** `/v1/device/logs/*`: the gateway claims its requests and uploads their lines. */
export function deviceLogRoutes(ctx: ControlPlaneContext) {
  const app = new Hono<AppEnv>();
  app.use('*', requireDevice());
  app.post('/claim', (c) => c.json({ requests: relayOf(ctx).claim(c.var.device.id) }));
  app.post('/:id', async (c) => {
    const state = relayOf(ctx).find(c.var.device.id, c.req.param('id'));
    if (!state) throw new HttpError(404, 'log-request-gone', 'no such log request is open for this device (the operator left, or it timed out); stop sending');
    let lines = 0;
    const ended = new Promise<null>((resolve) => state.onEnd(() => resolve(null)));
    const reader = (c.req.raw.body ?? new ReadableStream()).pipeThrough(new TextDecoderStream()).getReader();
    const split = new LineBuffer();
    reading: for (;;) {
      const chunk = await Promise.race([reader.read(), ended]);
      if (chunk === null) break;
      if (chunk.done) {
        state.end('done');
        break;
      }
      for (const raw of split.push(chunk.value)) {
        let parsed;
        try {
          parsed = logLine.safeParse(JSON.parse(raw));
        } catch {
          continue;
        }
        if (!parsed.success) continue;
        if (!state.relay(JSON.stringify(parsed.data))) break reading;
        lines++;
      }
    }
    reader.cancel().catch(() => undefined);
    // Still sending (following): closing the connection is how the gateway learns to stop.
    return c.json({ lines, ended: state.ended ?? 'done' }, 200, state.ended === 'done' ? {} : { Connection: 'close' });
  });
  return app;
}
