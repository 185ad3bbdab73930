/** A figure measured several times: the median is reported, min and max show the spread. */
export interface Stat {
  median: number;
  min: number;
  max: number;
  runs: number;
}

export function stat(samples: number[]): Stat {
  if (samples.length === 0) throw new Error('stat of no samples');
  const s = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  return { median, min: s[0], max: s[s.length - 1], runs: s.length };
}

export async function repeat(runs: number, fn: (i: number) => Promise<number>): Promise<Stat> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) samples.push(await fn(i));
  return stat(samples);
}

/** Percentile of raw latencies (ms), nearest-rank. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** One row of the benchmark table; `baseline` and `ratio` are set when the row compares. */
export interface BenchRow {
  bench: string;
  metric: string;
  unit: string;
  berth: Stat;
  baseline?: { name: string; value: Stat };
  /** berth / baseline, computed from medians measured in the same run. */
  ratio?: number;
  note?: string;
}

export function compare(bench: string, metric: string, unit: string, berth: Stat, baselineName: string, baseline: Stat, note?: string): BenchRow {
  return { bench, metric, unit, berth, baseline: { name: baselineName, value: baseline }, ratio: baseline.median === 0 ? undefined : berth.median / baseline.median, note };
}

export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const a = Math.abs(n);
  if (a >= 100) return n.toFixed(0);
  if (a >= 10) return n.toFixed(1);
  // Below 0.01, two significant digits: a delta's 0.0019× of docker pull must not read 0.00.
  if (a > 0 && a < 0.01) return n.toPrecision(2);
  return n.toFixed(2);
}

export function fmtStat(s: Stat): string {
  return `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)}, n=${s.runs})`;
}

export interface BenchOptions {
  quick: boolean;
  log: (msg: string) => void;
}

/** One benchmark module's export: `run` measures and returns its rows (it cleans up what it starts). */
export interface Bench {
  name: string;
  title: string;
  run(opts: BenchOptions): Promise<BenchRow[]>;
}
