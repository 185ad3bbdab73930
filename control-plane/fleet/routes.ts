import { Hono } from 'hono';
import type { ControlPlaneContext } from '../context.js';
import type { AppEnv } from '../http.js';
import type { ControlPlaneMetrics } from '../metrics.js';
import { requireRole } from '../operators/auth.js';
import { campaignCounts, deviceCounts, fleetStatus } from './status.js';

/** `/v1/fleet/status` (viewer). */
export function fleetRoutes(ctx: ControlPlaneContext) {
  const app = new Hono<AppEnv>();
  app.get('/status', requireRole('viewer'), async (c) => c.json(await fleetStatus(ctx, ctx.now().getTime(), ctx.config.offlineAfterMs)));
  return app;
}

/**
 * The fleet gauges, read at scrape time. One scrape reads the counts once: the three device gauges
 * share a reading taken by whichever of them is read first within the same second.
 */
export function fleetGauges(ctx: ControlPlaneContext, metrics: ControlPlaneMetrics): void {
  let cached: { at: number; counts: Promise<Awaited<ReturnType<typeof deviceCounts>>> } | null = null;
  const counts = () => {
    const now = ctx.now().getTime();
    if (!cached || now - cached.at > 1000) cached = { at: now, counts: deviceCounts(ctx.db, now, ctx.config.offlineAfterMs) };
    return cached.counts;
  };
  metrics.gauge('berth_cp_fleet_online', async () => {
    const c = await counts();
    return [{ labels: { online: 'true' }, value: c.online }, { labels: { online: 'false' }, value: c.offline }];
  });
  metrics.gauge('berth_cp_fleet_sync', async () => Object.entries((await counts()).sync).map(([state, value]) => ({ labels: { state }, value })));
  metrics.gauge('berth_cp_fleet_phase', async () => Object.entries((await counts()).phases).map(([phase, value]) => ({ labels: { phase }, value })));
  metrics.gauge('berth_cp_campaigns', async () => Object.entries(await campaignCounts(ctx.db)).map(([status, value]) => ({ labels: { status }, value })));
}
