import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Prometheus metrics through prom-client, one Registry per service instance (tests and the demo
 * run several services in one process, so a module-level default registry would mix them). Each
 * registry also carries prom-client's default process and Node.js metrics (CPU, memory, event-loop
 * lag, GC, handles).
 *
 * The event-loop lag is sampled by a timer every EVENT_LOOP_PRECISION_MS, not prom-client's 10 ms: that
 * timer wakes every process 100 times a second, 0.83 % of a core each with nothing else to do (0.10 %
 * at 100 ms; perf_hooks alone, Node 20), and `--workers 10` runs twelve: the idle 10-worker control
 * plane used 6.7-7.4 % of a core, 4.6-4.7 % with this (issue 17, control-plane/SCALING.md). A stall of
 * the period or longer always shows in nodejs_eventloop_lag_*; a shorter one only when it spans a
 * sample.
 */
const EVENT_LOOP_PRECISION_MS = 100;

export function createServiceRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_PRECISION_MS });
  return registry;
}

/** The text exposition of a registry and its content type, for a `/metrics` route. */
export async function exposition(registry: Registry): Promise<{ body: string; contentType: string }> {
  return { body: await registry.metrics(), contentType: registry.contentType };
}

export type MetricSpec =
  | { type: 'counter'; help: string; labels?: readonly string[] }
  | { type: 'gauge'; help: string; labels?: readonly string[] }
  | { type: 'histogram'; help: string; labels?: readonly string[]; buckets: readonly number[] };

export type Labels = Record<string, string>;
/** What a gauge reads at scrape time: one value, or one per label set. */
export type GaugeReading = number | Array<{ labels: Labels; value: number }>;

type Metric = Counter | Gauge | Histogram;

/**
 * A service's own metrics, declared once as a table (name → type, help, label names) and
 * registered in the given registry. Names are checked by the type system; a label set that does
 * not match the declaration throws (prom-client's check), so a typo fails in tests, not in Grafana.
 */
export class MetricSet<Spec extends Record<string, MetricSpec>> {
  private readonly metrics = new Map<string, Metric>();
  private readonly readers = new Map<string, () => GaugeReading | Promise<GaugeReading>>();

  constructor(readonly registry: Registry, specs: Spec) {
    for (const [name, spec] of Object.entries(specs)) {
      const base = { name, help: spec.help, labelNames: [...(spec.labels ?? [])], registers: [registry] };
      if (spec.type === 'counter') this.metrics.set(name, new Counter(base));
      else if (spec.type === 'histogram') this.metrics.set(name, new Histogram({ ...base, buckets: [...spec.buckets] }));
      else {
        const readers = this.readers;
        this.metrics.set(name, new Gauge({
          ...base,
          async collect() {
            const read = readers.get(name);
            if (!read) return;
            const reading = await read();
            this.reset();
            if (typeof reading === 'number') this.set(reading);
            else for (const r of reading) this.set(r.labels, r.value);
          },
        }));
      }
    }
  }

  private get<M extends Metric>(name: string, kind: new (...args: never[]) => M): M {
    const m = this.metrics.get(name);
    if (!(m instanceof kind)) throw new Error(`metric ${name} is not a declared ${kind.name.toLowerCase()}`);
    return m;
  }

  inc(name: keyof Spec & string, labels: Labels = {}, by = 1): void {
    this.get(name, Counter).inc(labels, by);
  }

  observe(name: keyof Spec & string, labels: Labels, value: number): void {
    this.get(name, Histogram).observe(labels, value);
  }

  /** Sets how a gauge is read at scrape time (the latest call wins). */
  gauge(name: keyof Spec & string, read: () => GaugeReading | Promise<GaugeReading>): void {
    this.get(name, Gauge);
    this.readers.set(name, read);
  }

  /** The current value of one counter or gauge series (tests, logs); 0 when it was never touched. */
  async value(name: keyof Spec & string, labels: Labels = {}): Promise<number> {
    const m = this.metrics.get(name);
    if (!m) throw new Error(`metric ${name} is not declared`);
    const data = await m.get();
    const want = Object.entries(labels);
    const sample = data.values.find((v) => {
      const have = v.labels as Record<string, string | number | undefined>;
      return Object.keys(have).length === want.length && want.every(([k, val]) => String(have[k]) === val);
    });
    return sample?.value ?? 0;
  }

  /** The exposition of the whole registry (this set, the defaults and anything else registered). */
  render(): Promise<{ body: string; contentType: string }> {
    return exposition(this.registry);
  }
}
