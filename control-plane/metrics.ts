import type { Registry } from 'prom-client';
import { createServiceRegistry, MetricSet, type MetricSpec } from '../common/metrics.js';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The control plane's own series (names kept from the hand-written exporter they replace). */
export const CONTROL_PLANE_METRICS = {
  berth_cp_http_requests_total: { type: 'counter', help: 'HTTP requests by route and status', labels: ['method', 'route', 'status'] },
  berth_cp_http_request_duration_seconds: { type: 'histogram', help: 'HTTP request latency by route', labels: ['method', 'route'], buckets: LATENCY_BUCKETS },
  berth_cp_devices: { type: 'gauge', help: 'Devices by status', labels: ['status'] },
  berth_cp_desired_long_polls: { type: 'gauge', help: 'Long polls waiting for a desired-state change' },
  berth_cp_fleet_online: { type: 'gauge', help: 'Enrolled devices by online (heard from within --offline-after)', labels: ['online'] },
  berth_cp_fleet_sync: { type: 'gauge', help: 'Enrolled devices by sync state: in-sync, updating, failed, drifting, unassigned', labels: ['state'] },
  berth_cp_fleet_phase: { type: 'gauge', help: 'Enrolled devices by the phase of their last report (none: never reported)', labels: ['phase'] },
  berth_cp_campaigns: { type: 'gauge', help: 'Campaigns by status', labels: ['status'] },
  berth_cp_lease_held: { type: 'gauge', help: '1 while this process holds the singletons lease (drives campaigns, sends webhooks, sweeps presence)' },
  berth_cp_campaign_ticks: { type: 'gauge', help: 'Campaign scheduler ticks this process ran as the driver since it started' },
} as const satisfies Record<string, MetricSpec>;

/** One per control-plane instance, in its own registry (with the default process metrics). */
export class ControlPlaneMetrics extends MetricSet<typeof CONTROL_PLANE_METRICS> {
  constructor(registry: Registry = createServiceRegistry()) {
    super(registry, CONTROL_PLANE_METRICS);
  }

  /** `route` is the matched route pattern, never the raw path: a client's path must not become a series. */
  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.inc('berth_cp_http_requests_total', { method, route, status: String(status) });
    this.observe('berth_cp_http_request_duration_seconds', { method, route }, seconds);
  }
}
