/**
 * One process of the fleet simulator: devices [from, to) speak the daemon's control protocol
 * without Docker. Reads its job as JSON on stdin; prints JSON event lines on stdout:
 *   {"event":"enrolled", seconds}   every device enrolled (challenge, signature, enroll)
 *   {"event":"polling", seconds}    every device has its long poll open
 *   {"event":"done", seconds, ...}  every device verified its document and reported running
 *   {"event":"final", ...}          on SIGTERM: the counts up to then (devices keep polling after done)
 * Each device holds one keep-alive connection and one long poll on it, as a gateway does: with its
 * document it reports downloading, waits its download time, reports running (on the same
 * connection, between polls), and polls again with the document's ETag, as the daemon does.
 */
import { Agent, request } from 'node:http';
import { verifyDeployment } from '../../protocol/deployment.js';
import { signBytes } from '../../protocol/keys.js';
import { enrollProofBytes, type DeviceReport } from '../../protocol/device.js';
import { simDevice } from './devices.js';
import { PortPool, sourcePortRefused } from './fleet-sim-ports.js';
import { readJob } from './proc.js';
import { RawConnection, requestText, type RawAnswer } from './raw-http.js';

export interface SimJob {
  /** The control plane's addresses (IPv4 and IPv6 loopback); device i polls on `cpUrls[i % n]`. */
  cpUrls: string[];
  fleet: string;
  from: number;
  to: number;
  /** Enrollments in flight at once. */
  enrollConcurrency: number;
  /** The long poll's `?wait=` (the server answers within it). */
  waitSeconds: number;
  /** Connects under way at once while the polls open. */
  connectWindow: number;
  /** Between a device's downloading and running reports, uniform in [min, max]: stands in for its download. */
  downloadMs: [number, number];
  /** Source ports this worker binds (fleet-sim-ports.ts), on each address family; then the ephemeral range. */
  sourcePorts: number[];
}

interface Device {
  i: number;
  serial: string;
  deviceId: string;
  token: string;
  jwks: { keys: object[] };
  reportSeq: number;
  etag: string | null;
  url: URL;
  conn: RawConnection;
}

const job = await readJob<SimJob>();
const urls = job.cpUrls.map((u) => new URL(u));
const agent = new Agent({ keepAlive: true, maxSockets: job.enrollConcurrency });

/** Enrollment's request through node:http, from the device's own loopback (each address has its enrollment budget). */
function call(base: URL, method: string, path: string, json: unknown): Promise<{ status: number; body: string; retryAfter?: number }> {
  const body = JSON.stringify(json);
  const headers = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, base), { method, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      const retryAfter = /^\d+$/.test(res.headers['retry-after'] ?? '') ? Number(res.headers['retry-after']) : undefined;
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), retryAfter }));
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error('no answer in time (30 s)')));
    req.on('error', reject);
    req.end(body);
  });
}

/** Statuses a daemon retries: the request may not have been processed (408, 429, 5xx). */
const RETRYABLE = new Set([408, 429, 500, 502, 503, 504]);
let retries = 0;
let sourcePortSwaps = 0;
const retryReasons = new Map<string, number>();
const countRetry = (reason: string) => {
  retries++;
  retryReasons.set(reason, (retryReasons.get(reason) ?? 0) + 1);
};

/** An answer's Retry-After plus up to half of it again (ms), so devices refused together do not come back together. */
const retryAfterWaitMs = (r: { retryAfter?: number }) => (r.retryAfter ?? 0) * 1000 * (1 + Math.random() / 2);

/**
 * Retries network errors and retryable statuses with backoff, as the daemon does (it never gives
 * up), never sooner than an answer's Retry-After (a 503 for a busy database, a 429) plus up to half
 * of it again, so devices refused together do not come back together; counts every retry, which
 * the bench reports (the target is none). Bounded at 30 attempts (about 2 minutes) so a broken
 * server still ends the run.
 */
async function withRetry<T extends { status: number; retryAfter?: number }>(what: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    let reason: string;
    let atLeastMs = 0;
    try {
      const r = await fn();
      if (!RETRYABLE.has(r.status)) return r;
      reason = `HTTP ${r.status}`;
      atLeastMs = retryAfterWaitMs(r);
    } catch (err) {
      reason = (err as Error).message.replace(/\d+/g, 'N');
    }
    if (attempt >= 30) throw new Error(`${what}: gave up after ${attempt} attempts (${reason})`);
    countRetry(reason);
    await new Promise((r) => setTimeout(r, Math.max(atLeastMs, Math.min(5000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2))));
  }
}

async function enroll(i: number): Promise<Device> {
  const d = simDevice(job.fleet, i);
  const url = urls[i % urls.length];
  for (let attempt = 1; ; attempt++) {
    // A fresh challenge per attempt: a challenge is single-use whatever the outcome.
    const ch = await withRetry(`challenge ${d.serial}`, () => call(url, 'POST', '/v1/enroll/challenge', { serial: d.serial }));
    if (ch.status !== 200) throw new Error(`challenge ${d.serial}: ${ch.status} ${ch.body.slice(0, 200)}`);
    const { challenge } = JSON.parse(ch.body) as { challenge: string };
    const r: { status: number; body: string; retryAfter?: number } = await call(url, 'POST', '/v1/enroll', { serial: d.serial, challenge, signature: signBytes(d.privateKey, enrollProofBytes(d.serial, challenge)) }).catch((err: Error) => ({ status: 0, body: err.message }));
    if (r.status === 200) {
      const out = JSON.parse(r.body) as { deviceId: string; token: string; jwks: { keys: object[] } };
      return { i, serial: d.serial, deviceId: out.deviceId, token: out.token, jwks: sharedJwks(out.jwks), reportSeq: 0, etag: null, url, conn: new RawConnection(url) };
    }
    if ((r.status !== 0 && !RETRYABLE.has(r.status)) || attempt >= 8) throw new Error(`enroll ${d.serial}: ${r.status} ${r.body.slice(0, 200)}`);
    countRetry(`enroll ${r.status}`);
    await new Promise((res) => setTimeout(res, Math.max(200 * attempt, retryAfterWaitMs(r))));
  }
}

/** Every device gets the same key set: one object for all of them, not 50,000 copies. */
const jwksSeen = new Map<string, { keys: object[] }>();
function sharedJwks(jwks: { keys: object[] }): { keys: object[] } {
  const key = JSON.stringify(jwks);
  const hit = jwksSeen.get(key);
  if (hit) return hit;
  jwksSeen.set(key, jwks);
  return jwks;
}

/** Requests in flight and when each gives up (swept twice a second: one timer, not one per request). */
const deadlines = new Map<RawConnection, number>();
const sweep = setInterval(() => {
  const now = Date.now();
  for (const [conn, at] of deadlines) if (at <= now) conn.abort(new Error("no answer within the daemon's timeout"));
}, 500);
sweep.unref();

const pools = urls.map(() => new PortPool(job.sourcePorts));
const localAddressOf = (url: URL) => (url.hostname.startsWith('[') ? '::1' : '127.0.0.1');

/** A connection from the next source port of the device's family (or the ephemeral range once they are used up). */
function newConnection(d: Device): RawConnection {
  const localPort = pools[d.i % urls.length].take();
  return new RawConnection(d.url, localPort === undefined ? {} : { localAddress: localAddressOf(d.url), localPort }, true);
}

/** One request on the device's connection; a source port refused is swapped for another, not counted as a retry. */
async function send(d: Device, text: string, timeoutMs: number): Promise<RawAnswer> {
  for (let swaps = 0; ; swaps++) {
    const conn = d.conn;
    deadlines.set(conn, Date.now() + timeoutMs);
    try {
      return await conn.send(text);
    } catch (err) {
      if (!sourcePortRefused(err as Error) || swaps >= 20) throw err;
      sourcePortSwaps++;
      d.conn = newConnection(d);
    } finally {
      deadlines.delete(conn);
    }
  }
}

/** The daemon's timeouts: a long poll that outlives its wait by 15 s is dead; any other answer may take 300 s (edge-daemon/control-http.ts). */
const POLL_TIMEOUT_MS = (job.waitSeconds + 15) * 1000;
const REPORT_TIMEOUT_MS = 300_000;

async function report(d: Device, fields: Pick<DeviceReport, 'desiredSequence' | 'running' | 'phase'> & Partial<DeviceReport>): Promise<void> {
  const body = JSON.stringify({ sequence: ++d.reportSeq, bytes: { done: 0, total: 0 }, services: {}, at: new Date().toISOString(), ...fields } satisfies DeviceReport);
  const r = await withRetry(`report ${d.serial}`, () => send(d, requestText('POST', new URL('/v1/device/report', d.url), { authorization: `Bearer ${d.token}` }, body), REPORT_TIMEOUT_MS));
  if (r.status !== 202) throw new Error(`report ${d.serial}: ${r.status} ${r.text.slice(0, 200)}`);
}

let polls = 0;
let rejected = 0;
let done = 0;
let stopping = false;
const devices: Device[] = [];
let onAllDone: () => void = () => {};
const allDone = new Promise<void>((resolve) => (onAllDone = resolve));

/** The document's turn: verify, report downloading, download, report running. */
async function deploy(d: Device, answer: RawAnswer): Promise<void> {
  const { document } = JSON.parse(answer.text) as { document: string };
  let doc;
  try {
    doc = await verifyDeployment(document, { keys: d.jwks as { keys: never[] }, device: d.deviceId });
  } catch (err) {
    rejected++;
    await report(d, { desiredSequence: null, running: null, phase: 'failed', error: (err as Error).message });
    return;
  }
  const release = `${doc.manifest.name}@${doc.manifest.version}`;
  await report(d, { desiredSequence: doc.sequence, running: null, phase: 'downloading' });
  const [lo, hi] = job.downloadMs;
  await new Promise((r) => setTimeout(r, lo + Math.random() * (hi - lo)));
  const services = Object.fromEntries(Object.entries(doc.spec.services).map(([name, s]) => [name, { image: s.image, status: 'running' as const, health: 'none' as const, restarts: 0 }]));
  await report(d, { desiredSequence: doc.sequence, running: release, phase: 'running', services });
}

/** Devices whose connection's first poll is not answered yet (the opening window, below). */
let opening = 0;

/** A device's life: long poll (with its ETag once it has one) until stopped; each new document deployed. */
async function live(d: Device): Promise<void> {
  d.conn = newConnection(d);
  let deployed = false;
  // The first poll on a new connection waits for nothing: its answer says the server took the
  // connection off its accept queue, which the opening window counts (a connect completes before that).
  let first = true;
  opening++;
  while (!stopping) {
    polls++;
    const headers: Record<string, string> = { authorization: `Bearer ${d.token}` };
    if (d.etag) headers['if-none-match'] = d.etag;
    const text = requestText('GET', new URL(`/v1/device/desired?wait=${first ? 0 : job.waitSeconds}`, d.url), headers, undefined);
    const r = await withRetry(`desired ${d.serial}`, () => send(d, text, POLL_TIMEOUT_MS));
    if (first) {
      first = false;
      opening--;
    }
    if (r.status === 204 || r.status === 304) continue;
    if (r.status !== 200) throw new Error(`desired ${d.serial}: ${r.status} ${r.text.slice(0, 200)}`);
    d.etag = r.etag ?? null;
    await deploy(d, r);
    if (!deployed) {
      deployed = true;
      if (++done === devices.length) onAllDone();
    }
  }
}

function emit(event: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(event) + '\n');
}

const counts = () => ({ devices: devices.length, polls, rejected, retries, sourcePortSwaps, retryReasons: Object.fromEntries(retryReasons) });
process.on('SIGTERM', () => {
  stopping = true;
  emit({ event: 'final', ...counts() });
  process.exit(0);
});

const t0 = performance.now();
{
  let next = job.from;
  await Promise.all(
    Array.from({ length: job.enrollConcurrency }, async () => {
      while (next < job.to) devices.push(await enroll(next++));
    }),
  );
}
agent.destroy();
emit({ event: 'enrolled', devices: devices.length, seconds: (performance.now() - t0) / 1000, retries });

// Opened a window at a time: at most `connectWindow` devices whose first poll is unanswered.
// Thousands of connects at once overflow the server's accept queue, and a dropped SYN is retried
// after 1, 3, 7… s, a tail that measures the kernel, not Berth. Counting connects under way was
// not enough: a connect completes when the kernel has queued it, before a busy worker accepts it,
// and at 100,000 devices the queues filled (SYN-SENT for seconds, enrollment's last connects too).
const failed: Error[] = [];
const t1 = performance.now();
let started = 0;
while (started < devices.length) {
  const room = Math.max(0, job.connectWindow - opening);
  for (const d of devices.slice(started, started + room)) live(d).catch((err: Error) => failed.push(err));
  started = Math.min(devices.length, started + room);
  await new Promise((r) => setTimeout(r, 10));
}
while (opening > 0 && failed.length === 0) await new Promise((r) => setTimeout(r, 100));
emit({ event: 'polling', seconds: (performance.now() - t1) / 1000 });

const t2 = performance.now();
await Promise.race([
  allDone,
  new Promise<void>((_, reject) => {
    const check = setInterval(() => failed.length && (clearInterval(check), reject(failed[0])), 200);
  }),
]);
emit({ event: 'done', seconds: (performance.now() - t2) / 1000, ...counts() });
// Devices keep polling with their new ETag until the bench stops this process (SIGTERM: the final counts).
setInterval(() => failed.length && (emit({ event: 'failed', message: failed[0].message }), process.exit(1)), 200);
