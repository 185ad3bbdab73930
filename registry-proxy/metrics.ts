import type { Registry } from 'prom-client';
import { MetricSet, type MetricSpec } from '../common/metrics.js';

/** The proxy's own series (names kept from the hand-written exporter they replace). */
export const PROXY_METRICS = {
  berth_proxy_requests_total: { type: 'counter', help: 'HTTP requests by route kind and status', labels: ['route', 'status'] },
  berth_proxy_served_bytes_total: { type: 'counter', help: 'Body bytes sent to clients by kind', labels: ['kind'] },
  berth_proxy_cache_hits_total: { type: 'counter', help: 'Requests answered from the cache by kind', labels: ['kind'] },
  berth_proxy_cache_misses_total: { type: 'counter', help: 'Requests that needed the upstream by kind', labels: ['kind'] },
  berth_proxy_cache_hit_bytes_total: { type: 'counter', help: 'Blob bytes served from the cache' },
  berth_proxy_cache_miss_bytes_total: { type: 'counter', help: 'Blob bytes served while fetching from the upstream' },
  berth_proxy_upstream_bytes_total: { type: 'counter', help: 'Bytes received from upstreams by upstream', labels: ['upstream'] },
  berth_proxy_upstream_errors_total: { type: 'counter', help: 'Upstream failures by upstream and reason', labels: ['upstream', 'reason'] },
  berth_proxy_upstream_resumes_total: { type: 'counter', help: 'Interrupted upstream fetches resumed with Range', labels: ['upstream'] },
  berth_proxy_digest_mismatches_total: { type: 'counter', help: 'Upstream blobs or manifests refused for a wrong digest', labels: ['upstream', 'kind'] },
  berth_proxy_auth_failures_total: { type: 'counter', help: 'Requests refused for a missing, invalid or insufficient token', labels: ['reason'] },
  berth_proxy_inflight_fetches: { type: 'gauge', help: 'Upstream blob fetches in progress' },
  berth_proxy_cache_size_bytes: { type: 'gauge', help: 'Bytes of verified blobs in the cache' },
  berth_proxy_cache_blobs: { type: 'gauge', help: 'Verified blobs in the cache' },
} as const satisfies Record<string, MetricSpec>;

export type ProxyMetrics = MetricSet<typeof PROXY_METRICS>;

/** One per proxy instance, in that instance's registry. */
export function createProxyMetrics(registry: Registry): ProxyMetrics {
  return new MetricSet(registry, PROXY_METRICS);
}
