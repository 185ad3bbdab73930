import { count, sql } from 'drizzle-orm';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { bodyLimit } from 'hono/body-limit';
import { routePath } from 'hono/route';
import { requestId } from '../common/request-id.js';
import type { ControlPlaneContext } from './context.js';
import { devices } from './db/schema.js';
import { deviceApiRoutes } from './device-api/routes.js';
import { deviceRoutes } from './devices/routes.js';
import { enrollmentRoutes } from './device-api/enrollment.js';
import { errorAnswerOf, errorBody, logErrorAnswer, type AppEnv } from './http.js';
import { manifestRoutes } from './manifests/routes.js';
import { ControlPlaneMetrics } from './metrics.js';
import { answerCheck, describeRoutes } from './openapi.js';
import { operatorRoutes } from './operators/routes.js';
import { revocationList } from './operators/revocations.js';
import { registryTokenRoutes } from './device-api/registry-token.js';
import { campaignRoutes } from './campaigns/routes.js';
import { policyRoutes } from './policy/routes.js';
import { webhookRoutes } from './webhooks/routes.js';
import { fleetGauges, fleetRoutes } from './fleet/routes.js';
import { varsRoutes } from './vars/routes.js';
import { consoleRoutes } from './ui/routes.js';
import { secretRoutes } from './device-secrets/routes.js';
import { deviceLogRoutes, operatorLogRoutes } from './device-logs/routes.js';

/**
 * hono's bodyLimit, with the two cases that need no body stream decided from the headers alone: no
 * Content-Length and no Transfer-Encoding (HTTP/1.1: no body, e.g. every poll), or a Content-Length
 * and no Transfer-Encoding (the length is what will be read). bodyLimit asks for `req.raw.body`
 * first, which makes @hono/node-server build a full WHATWG Request with a body stream for every
 * request, a poll's largest cost after the database; a body read then takes the slow path too.
 */
function limitBody(maxSize: number, onError: (c: Context<AppEnv>) => Response): MiddlewareHandler<AppEnv> {
  const streamed = bodyLimit({ maxSize, onError });
  return async (c, next) => {
    if (c.req.header('transfer-encoding') !== undefined) return streamed(c, next);
    const length = c.req.header('content-length');
    if (length === undefined) return next();
    if (!/^\d+$/.test(length)) return streamed(c, next);
    return Number(length) <= maxSize ? next() : onError(c);
  };
}

export function buildApp(ctx: ControlPlaneContext, metrics = new ControlPlaneMetrics()): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.use('*', requestId(ctx.log));
  app.use('*', async (c, next) => {
    c.set('ctx', ctx);
    const started = performance.now();
    await next();
    const seconds = (performance.now() - started) / 1000;
    const route = routePath(c);
    metrics.observeRequest(c.req.method, route, c.res.status, seconds);
    // Polls and reports are the bulk of the traffic; their successes are counted, not logged. So are
    // enrollments' (a fleet enrolls in bursts): each one is in the audit log, and a challenge is anyone's.
    const quiet = c.res.status < 400 && (route === '/v1/device/desired' || route === '/v1/device/report' || route === '/metrics' || route === '/healthz' || route.startsWith('/v1/enroll'));
    if (!quiet) c.var.log.info({ method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(seconds * 1000) }, 'request');
  });

  const check = answerCheck(process.env);
  if (check) app.use('*', check);

  app.onError((err, c) => {
    const a = errorAnswerOf(err);
    logErrorAnswer(a, err, () => c.var.log);
    return c.json(a.body, a.status as ContentfulStatusCode, a.headers);
  });
  // Bodies are small JSON except manufacturing imports (one line per device).
  // `Connection: close`: the unread rest of the body makes the connection unusable for the next request.
  const tooLarge = (max: string) => (c: Context<AppEnv>) => c.json(errorBody('body-too-large', `request body is larger than ${max}`), 413, { Connection: 'close' });
  app.use('/v1/devices/import', bodyLimit({ maxSize: 64 << 20, onError: tooLarge('64 MiB') }));
  // Log uploads stream for as long as an operator follows; the relay caps each request itself.
  const limit1MiB = limitBody(1 << 20, tooLarge('1 MiB'));
  app.use('/v1/*', async (c, next) => (c.req.path === '/v1/devices/import' || c.req.path.startsWith('/v1/device/logs/') ? next() : limit1MiB(c, next)));
  app.notFound((c) => c.json(errorBody('not-found', `no route ${c.req.method} ${c.req.path}`), 404));

  app.get('/healthz', async (c) => {
    await ctx.db.run(sql`SELECT 1`);
    return c.json({ status: 'ok' });
  });

  metrics.gauge('berth_cp_devices', async () => {
    const byStatus = await ctx.db.select({ status: devices.status, n: count() }).from(devices).groupBy(devices.status);
    return byStatus.map((r) => ({ labels: { status: r.status }, value: r.n }));
  });
  metrics.gauge('berth_cp_desired_long_polls', () => ctx.waiters.size);
  fleetGauges(ctx, metrics);
  app.get('/metrics', async (c) => {
    const { body, contentType } = await metrics.render();
    return c.body(body, 200, { 'Content-Type': contentType });
  });

  app.get('/v1/revocations', async (c) => c.json(await revocationList(ctx), 200, { 'Cache-Control': 'no-store' }));
  app.get('/.well-known/jwks.json', (c) => c.json(ctx.keys.jwks(ctx.now().getTime()), 200, { 'Cache-Control': 'max-age=60' }));

  app.route('/', describeRoutes(ctx));
  app.route('/v1/enroll', enrollmentRoutes(ctx));
  app.route('/v1/device/logs', deviceLogRoutes(ctx));
  app.route('/v1/device', deviceApiRoutes(ctx));
  app.route('/v1/devices', operatorLogRoutes(ctx));
  app.route('/v1/devices', deviceRoutes(ctx));
  app.route('/v1/manifests', manifestRoutes(ctx));
  app.route('/v1/registry', registryTokenRoutes(ctx));
  app.route('/v1', operatorRoutes(ctx));
  app.route('/v1/campaigns', campaignRoutes(ctx));
  app.route('/v1/policies', policyRoutes(ctx));
  app.route('/v1/webhooks', webhookRoutes(ctx));
  app.route('/v1/fleet', fleetRoutes(ctx));
  app.route('/v1/vars', varsRoutes(ctx));
  app.route('/v1/secrets', secretRoutes(ctx));
  const ui = consoleRoutes(ctx);
  app.route('/', ui.ui);
  app.route('/v1/console', ui.api);

  return app;
}
