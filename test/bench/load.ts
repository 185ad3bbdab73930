/**
 * The load generator, run as its own process by the benches (so it never shares the measured
 * server's event loop). Reads one job as JSON on stdin, prints one JSON result line.
 *
 *   requests: `concurrency` keep-alive connections, each sending requests back to back for
 *             `durationMs`; request i of a connection uses identity (i·concurrency + c) mod n, so
 *             the load spreads over every device token. `__SEQ__` in the body becomes the next
 *             per-identity sequence number (reports must carry increasing ones to be accepted).
 *             Sent with lean-http.ts (a minimal HTTP/1.1 client, callbacks and one reused read
 *             buffer: the load generator shares the cores with the server it measures, so it must
 *             cost little per request).
 *   download: `clients` connections each GET `url` once, reading and discarding the body.
 */
import { Agent, request } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { readJob } from './proc.js';
import { LeanConnection } from './lean-http.js';
import { requestText } from './raw-http.js';

export interface Identity {
  headers: Record<string, string>;
  /** This identity's body; overrides the job's. */
  body?: string;
}

export interface RequestsJob {
  kind: 'requests';
  url: string;
  method: 'GET' | 'POST';
  concurrency: number;
  durationMs: number;
  /** Warm-up before counting (connections opened, JIT warm). */
  warmupMs: number;
  identities: Identity[];
  body?: string;
  /** First sequence number used for `__SEQ__` (per identity, increasing). */
  seqStart?: number;
  /** The status counted as success. */
  expect: number;
  /**
   * Open loop: send at this fixed rate whatever the answers do (up to `concurrency` in flight), and
   * measure latency from each request's scheduled time, so a slow server cannot hide its queueing
   * (no coordinated omission). Without it, `concurrency` connections send back to back (closed
   * loop: the server's saturation throughput).
   */
  ratePerSecond?: number;
}

export interface RequestsResult {
  ok: number;
  failed: number;
  statuses: Record<string, number>;
  elapsedMs: number;
  perSecond: number;
  p50: number;
  p99: number;
  max: number;
  /** Requests answered over the whole run, warm-up included (per-request server cost = its CPU ÷ this). */
  answered: number;
  firstError?: string;
  /** CPU of this load-generator process, % of one core: near 100 means the client limits. */
  clientCpuPercent: number;
  /**
   * Open loop: the most a counted request was sent after its scheduled time (ms), and how many were
   * sent over 10 ms late. That wait is the generator's, yet it counts in the latency (measured from
   * the schedule): a generator descheduled on a shared core shows here, not as the server's.
   */
  sendLateMaxMs?: number;
  sendLateOver10?: number;
  /** This process's own event-loop delay over the run, ms beyond its 10 ms timer (p99, max). */
  clientLoop?: { p99: number; max: number };
  /** The slowest answers: wall-clock time each was scheduled or sent (ms since the epoch) and its latency. */
  slowest?: { at: number; ms: number }[];
}

export interface DownloadJob {
  kind: 'download';
  url: string;
  clients: number;
  headers?: Record<string, string>;
}

export interface DownloadResult {
  bytes: number;
  elapsedMs: number;
  /** Aggregate MB/s (10^6 bytes) over all clients. */
  mbPerSecond: number;
  /** Time to the first body byte, ms, per client. */
  ttfbMs: number[];
  statuses: number[];
}

function pct(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/**
 * Closed loop: connection c opens at c × `stagger` ms (spread over the first half of the warm-up,
 * at most 0.5 s) rather than all in one instant: 64 connects in one instant are all accepted by
 * whichever `--workers` process wakes first (each accepts until the queue is empty), an artifact
 * of the burst, not of clients that connect over time; the counted window starts after the last.
 */
function staggerMs(job: RequestsJob): number {
  return job.warmupMs > 0 ? Math.min(job.warmupMs / 2, 500) / job.concurrency : 0;
}

async function runRequests(job: RequestsJob): Promise<RequestsResult> {
  const url = new URL(job.url);
  if (url.protocol !== 'http:') throw new Error(`load: ${job.url}: only http: is supported`);
  const n = job.identities.length;
  const seq = new Map<number, number>();
  const cpu0 = process.cpuUsage();
  const latencies: number[] = [];
  const sentAt: number[] = [];
  let sendLateMaxMs = 0;
  let sendLateOver10 = 0;
  const clientLoop = monitorEventLoopDelay({ resolution: 10 });
  clientLoop.enable();
  const statuses: Record<string, number> = {};
  let ok = 0;
  let failed = 0;
  let firstError: string | undefined;
  let answered = 0;
  const start = performance.now();
  const countFrom = start + job.warmupMs;
  const end = countFrom + job.durationMs;
  // Requests whose bytes never change are built once per identity.
  const fixed = job.identities.map((id) => {
    const body = id.body ?? job.body;
    return body?.includes('__SEQ__') ? null : Buffer.from(requestText(job.method, url, id.headers, body));
  });
  function requestFor(who: number): Buffer {
    const built = fixed[who];
    if (built !== null) return built;
    const next = (seq.get(who) ?? job.seqStart ?? 1) + 1;
    seq.set(who, next);
    const id = job.identities[who];
    return Buffer.from(requestText(job.method, url, id.headers, (id.body ?? job.body ?? '').replaceAll('__SEQ__', String(next))));
  }
  /** One answer (or failure) of a request scheduled or sent at `t0`. */
  function count(status: number, body: Buffer | null, err: Error | undefined, t0: number): void {
    const t1 = performance.now();
    if (status !== 0) answered++;
    if (status !== job.expect && firstError === undefined) firstError = err ? err.message : `${status}: ${body?.toString('utf8') ?? ''}`;
    if (t0 < countFrom || t0 >= end) return;
    if (status === job.expect) {
      ok++;
      latencies.push(t1 - t0);
      sentAt.push(t0);
    } else {
      failed++;
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  }
  const conns: LeanConnection[] = [];
  const open = (): LeanConnection => {
    const c = new LeanConnection(url);
    conns.push(c);
    return c;
  };
  async function openLoop(rate: number): Promise<void> {
    // Connections are opened as the rate needs them (at most `concurrency`); the last one freed goes next.
    const idle: LeanConnection[] = [];
    let inFlight = 0;
    let freed: (() => void) | null = null;
    const slot = () => new Promise<void>((r) => (freed = r));
    for (let i = 0; ; i++) {
      const due = start + (i * 1000) / rate;
      if (due >= end) break;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      while (inFlight >= job.concurrency) await slot();
      const late = performance.now() - due;
      if (due >= countFrom) {
        sendLateMaxMs = Math.max(sendLateMaxMs, late);
        if (late > 10) sendLateOver10++;
      }
      const conn = idle.pop() ?? open();
      inFlight++;
      conn.send(requestFor(i % n), (status, body, err) => {
        count(status, body, err, due);
        inFlight--;
        idle.push(conn);
        const f = freed;
        freed = null;
        f?.();
      });
    }
    while (inFlight > 0) await slot();
  }
  /** Closed loop: the next request is written from the callback of the last answer. */
  function connection(c: number, delayMs: number): Promise<void> {
    return new Promise((done) => {
      const conn = open();
      let i = 0;
      let t0 = 0;
      const onAnswer = (status: number, body: Buffer | null, err?: Error) => {
        count(status, body, err, t0);
        next();
      };
      const next = () => {
        t0 = performance.now();
        if (t0 >= end) return done();
        conn.send(requestFor((i++ * job.concurrency + c) % n), onAnswer);
      };
      setTimeout(next, delayMs);
    });
  }
  if (job.ratePerSecond) await openLoop(job.ratePerSecond);
  else await Promise.all(Array.from({ length: job.concurrency }, (_, c) => connection(c, c * staggerMs(job))));
  for (const c of conns) c.close();
  const cpu = process.cpuUsage(cpu0);
  const clientCpuPercent = ((cpu.user + cpu.system) / 1000 / (performance.now() - start)) * 100;
  clientLoop.disable();
  const sorted = Float64Array.from(latencies).sort();
  if (ok > 0) statuses[job.expect] = ok;
  const slowest = latencies
    .map((ms, i) => ({ at: performance.timeOrigin + sentAt[i], ms }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 10);
  const lateBy = (ns: number): number => Math.max(0, ns / 1e6 - 10);
  return {
    ok,
    failed,
    statuses,
    elapsedMs: job.durationMs,
    perSecond: ok / (job.durationMs / 1000),
    p50: pct(sorted, 50),
    p99: pct(sorted, 99),
    max: sorted[sorted.length - 1] ?? NaN,
    answered,
    firstError,
    clientCpuPercent,
    ...(job.ratePerSecond ? { sendLateMaxMs, sendLateOver10 } : {}),
    clientLoop: { p99: lateBy(clientLoop.percentile(99)), max: lateBy(clientLoop.max) },
    slowest,
  };
}

async function runDownload(job: DownloadJob): Promise<DownloadResult> {
  const url = new URL(job.url);
  const agent = new Agent({ keepAlive: false, maxSockets: job.clients });
  const start = performance.now();
  let bytes = 0;
  const ttfbMs: number[] = [];
  const statuses: number[] = [];
  await Promise.all(
    Array.from(
      { length: job.clients },
      () =>
        new Promise<void>((resolve, reject) => {
          const t0 = performance.now();
          const req = request(url, { agent, headers: job.headers }, (res) => {
            statuses.push(res.statusCode ?? 0);
            let first = true;
            res.on('data', (c: Buffer) => {
              if (first) {
                ttfbMs.push(performance.now() - t0);
                first = false;
              }
              bytes += c.length;
            });
            res.on('end', resolve);
            res.on('error', reject);
          });
          req.on('error', reject);
          req.end();
        }),
    ),
  );
  const elapsedMs = performance.now() - start;
  agent.destroy();
  return { bytes, elapsedMs, mbPerSecond: bytes / 1e6 / (elapsedMs / 1000), ttfbMs, statuses };
}

const job = await readJob<RequestsJob | DownloadJob>();
const result = job.kind === 'requests' ? await runRequests(job) : await runDownload(job);
process.stdout.write(JSON.stringify(result) + '\n');
