/** Prometheus text exposition, hand-written: a few counters and a latency histogram per route. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

function labelText(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

export class Metrics {
  private readonly requests = new Map<string, { labels: Record<string, string>; count: number }>();
  private readonly durations = new Map<string, { labels: Record<string, string>; buckets: number[]; sum: number; count: number }>();

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    const labels = { method, route, status: String(status) };
    const key = labelText(labels);
    const r = this.requests.get(key) ?? { labels, count: 0 };
    r.count++;
    this.requests.set(key, r);
    const dLabels = { method, route };
    const dKey = labelText(dLabels);
    const d = this.durations.get(dKey) ?? { labels: dLabels, buckets: BUCKETS.map(() => 0), sum: 0, count: 0 };
    BUCKETS.forEach((b, i) => {
      if (seconds <= b) d.buckets[i]++;
    });
    d.sum += seconds;
    d.count++;
    this.durations.set(dKey, d);
  }

  render(gauges: { name: string; help: string; values: { labels: Record<string, string>; value: number }[] }[]): string {
    const out: string[] = [];
    out.push('# HELP berth_cp_http_requests_total HTTP requests by route and status', '# TYPE berth_cp_http_requests_total counter');
    for (const r of this.requests.values()) out.push(`berth_cp_http_requests_total${labelText(r.labels)} ${r.count}`);
    out.push('# HELP berth_cp_http_request_duration_seconds HTTP request latency by route', '# TYPE berth_cp_http_request_duration_seconds histogram');
    for (const d of this.durations.values()) {
      BUCKETS.forEach((b, i) => out.push(`berth_cp_http_request_duration_seconds_bucket${labelText({ ...d.labels, le: String(b) })} ${d.buckets[i]}`));
      out.push(`berth_cp_http_request_duration_seconds_bucket${labelText({ ...d.labels, le: '+Inf' })} ${d.count}`);
      out.push(`berth_cp_http_request_duration_seconds_sum${labelText(d.labels)} ${d.sum}`);
      out.push(`berth_cp_http_request_duration_seconds_count${labelText(d.labels)} ${d.count}`);
    }
    for (const g of gauges) {
      out.push(`# HELP ${g.name} ${g.help}`, `# TYPE ${g.name} gauge`);
      for (const v of g.values) out.push(`${g.name}${labelText(v.labels)} ${v.value}`);
    }
    return out.join('\n') + '\n';
  }
}
