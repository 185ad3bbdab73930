/**
 * Prometheus counters and gauges, written by hand in the text exposition format (0.0.4): a few
 * numbers do not need a client library. One instance per proxy, never a module-level singleton.
 */
export class ProxyMetrics {
  private readonly counters = new Map<string, number>();
  private readonly gauges = new Map<string, () => number>();

  private static readonly HELP: Record<string, [type: 'counter' | 'gauge', help: string]> = {
    berth_proxy_requests_total: ['counter', 'HTTP requests by route kind and status'],
    berth_proxy_served_bytes_total: ['counter', 'Body bytes sent to clients by kind'],
    berth_proxy_cache_hits_total: ['counter', 'Requests answered from the cache by kind'],
    berth_proxy_cache_misses_total: ['counter', 'Requests that needed the upstream by kind'],
    berth_proxy_cache_hit_bytes_total: ['counter', 'Blob bytes served from the cache'],
    berth_proxy_cache_miss_bytes_total: ['counter', 'Blob bytes served while fetching from the upstream'],
    berth_proxy_upstream_bytes_total: ['counter', 'Bytes received from upstreams by upstream'],
    berth_proxy_upstream_errors_total: ['counter', 'Upstream failures by upstream and reason'],
    berth_proxy_upstream_resumes_total: ['counter', 'Interrupted upstream fetches resumed with Range'],
    berth_proxy_digest_mismatches_total: ['counter', 'Upstream blobs or manifests refused for a wrong digest'],
    berth_proxy_auth_failures_total: ['counter', 'Requests refused for a missing, invalid or insufficient token'],
    berth_proxy_inflight_fetches: ['gauge', 'Upstream blob fetches in progress'],
    berth_proxy_cache_size_bytes: ['gauge', 'Bytes of verified blobs in the cache'],
    berth_proxy_cache_blobs: ['gauge', 'Verified blobs in the cache'],
  };

  inc(name: string, labels: Record<string, string> = {}, by = 1): void {
    const key = name + labelText(labels);
    this.counters.set(key, (this.counters.get(key) ?? 0) + by);
  }

  gauge(name: string, read: () => number): void {
    this.gauges.set(name, read);
  }

  /** For tests and logs: the current value of one series. */
  value(name: string, labels: Record<string, string> = {}): number {
    return this.counters.get(name + labelText(labels)) ?? 0;
  }

  render(): string {
    const byName = new Map<string, string[]>();
    for (const [key, v] of this.counters) {
      const name = key.split('{')[0];
      byName.set(name, [...(byName.get(name) ?? []), `${key} ${v}`]);
    }
    for (const [name, read] of this.gauges) byName.set(name, [`${name} ${read()}`]);
    const out: string[] = [];
    for (const [name, [type, help]] of Object.entries(ProxyMetrics.HELP)) {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...(byName.get(name) ?? (type === 'counter' ? [`${name} 0`] : [])));
    }
    return out.join('\n') + '\n';
  }
}

function labelText(labels: Record<string, string>): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return '';
  return '{' + keys.map((k) => `${k}="${labels[k].replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`).join(',') + '}';
}
