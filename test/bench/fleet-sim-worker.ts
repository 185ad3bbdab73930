/**
 * One process of the fleet simulator: devices [from, to) speak the daemon's control protocol
 * without Docker. Reads its job as JSON on stdin; prints JSON event lines on stdout:
 *   {"event":"enrolled", seconds}   every device enrolled (challenge, signature, enroll)
 *   {"event":"done", seconds, ...}  every device verified its document and reported running
 * Devices poll in rounds: `concurrency` long-polls (?wait=S) are open at a time; a device whose
 * poll ends without a document goes to the back of the queue. A real fleet holds one long-poll per
 * device; this box cannot hold 100,000 sockets, so at most `concurrency` per process are open.
 */
import { Agent, request } from 'node:http';
import { verifyDeployment } from '../../protocol/deployment.js';
import { signBytes } from '../../protocol/keys.js';
import { enrollProofBytes, type DeviceReport } from '../../protocol/device.js';
import { simDevice } from './devices.js';
import { readJob } from './proc.js';

export interface SimJob {
  cpUrl: string;
  fleet: string;
  from: number;
  to: number;
  /** Enrollments in flight at once. */
  enrollConcurrency: number;
  /** Long-polls open at once. */
  concurrency: number;
  waitSeconds: number;
}

interface Device {
  i: number;
  serial: string;
  deviceId: string;
  token: string;
  jwks: { keys: object[] };
  reportSeq: number;
}

const job = await readJob<SimJob>();
const base = new URL(job.cpUrl);
const agent = new Agent({ keepAlive: true, maxSockets: Math.max(job.concurrency, job.enrollConcurrency) });

/** One request; `timeoutMs` cuts a request that gets no answer (it is then retried). */
function call(method: string, path: string, opts: { token?: string; json?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<{ status: number; body: string }> {
  const body = opts.json === undefined ? undefined : JSON.stringify(opts.json);
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, base), { method, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(opts.timeoutMs ?? 30_000, () => req.destroy(new Error('no answer in time (wait + 15 s, as the daemon)')));
    req.on('error', reject);
    req.end(body);
  });
}

/** Statuses a daemon retries: the request may not have been processed (408, 429, 5xx). */
const RETRYABLE = new Set([408, 429, 500, 502, 503, 504]);
let retries = 0;
const retryReasons = new Map<string, number>();

/** Retries network errors and retryable statuses with backoff, as the daemon does; counts them. */
async function withRetry(what: string, fn: () => Promise<{ status: number; body: string }>): Promise<{ status: number; body: string }> {
  for (let attempt = 1; ; attempt++) {
    let reason: string;
    try {
      const r = await fn();
      if (!RETRYABLE.has(r.status)) return r;
      reason = `HTTP ${r.status}`;
    } catch (err) {
      reason = (err as Error).message.replace(/\d+/g, 'N');
    }
    if (attempt >= 8) throw new Error(`${what}: gave up after ${attempt} attempts (${reason})`);
    retries++;
    retryReasons.set(reason, (retryReasons.get(reason) ?? 0) + 1);
    await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2)));
  }
}

async function enroll(i: number): Promise<Device> {
  const d = simDevice(job.fleet, i);
  for (let attempt = 1; ; attempt++) {
    // A fresh challenge per attempt: a challenge is single-use whatever the outcome.
    const ch = await withRetry(`challenge ${d.serial}`, () => call('POST', '/v1/enroll/challenge', { json: { serial: d.serial } }));
    if (ch.status !== 200) throw new Error(`challenge ${d.serial}: ${ch.status} ${ch.body.slice(0, 200)}`);
    const { challenge } = JSON.parse(ch.body) as { challenge: string };
    const r = await call('POST', '/v1/enroll', { json: { serial: d.serial, challenge, signature: signBytes(d.privateKey, enrollProofBytes(d.serial, challenge)) } }).catch((err: Error) => ({ status: 0, body: err.message }));
    if (r.status === 200) {
      const out = JSON.parse(r.body) as { deviceId: string; token: string; jwks: { keys: object[] } };
      return { i, serial: d.serial, deviceId: out.deviceId, token: out.token, jwks: out.jwks, reportSeq: 0 };
    }
    if ((r.status !== 0 && !RETRYABLE.has(r.status)) || attempt >= 8) throw new Error(`enroll ${d.serial}: ${r.status} ${r.body.slice(0, 200)}`);
    retries++;
    retryReasons.set(`enroll ${r.status}`, (retryReasons.get(`enroll ${r.status}`) ?? 0) + 1);
    await new Promise((res) => setTimeout(res, 200 * attempt));
  }
}

async function report(d: Device, fields: Pick<DeviceReport, 'desiredSequence' | 'running' | 'phase'> & Partial<DeviceReport>): Promise<void> {
  const body: DeviceReport = { sequence: ++d.reportSeq, bytes: { done: 0, total: 0 }, services: {}, at: new Date().toISOString(), ...fields };
  const r = await withRetry(`report ${d.serial}`, () => call('POST', '/v1/device/report', { token: d.token, json: body }));
  if (r.status !== 202) throw new Error(`report ${d.serial}: ${r.status} ${r.body.slice(0, 200)}`);
}

function emit(event: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(event) + '\n');
}

const t0 = performance.now();
const devices: Device[] = [];
{
  let next = job.from;
  await Promise.all(
    Array.from({ length: job.enrollConcurrency }, async () => {
      while (next < job.to) devices.push(await enroll(next++));
    }),
  );
}
emit({ event: 'enrolled', devices: devices.length, seconds: (performance.now() - t0) / 1000, retries });

const t1 = performance.now();
const queue = [...devices];
let head = 0;
let polls = 0;
let rejected = 0;
/** One device's turn: a long-poll; with a document, verify it and report downloading → running. */
async function turn(d: Device): Promise<boolean> {
  polls++;
  const r = await withRetry(`desired ${d.serial}`, () => call('GET', `/v1/device/desired?wait=${job.waitSeconds}`, { token: d.token, timeoutMs: (job.waitSeconds + 15) * 1000 }));
  if (r.status === 204 || r.status === 304) return false;
  if (r.status !== 200) throw new Error(`desired ${d.serial}: ${r.status} ${r.body.slice(0, 200)}`);
  const { document } = JSON.parse(r.body) as { document: string };
  let doc;
  try {
    doc = await verifyDeployment(document, { keys: d.jwks as { keys: never[] }, device: d.deviceId });
  } catch (err) {
    rejected++;
    await report(d, { desiredSequence: null, running: null, phase: 'failed', error: (err as Error).message });
    return true;
  }
  const release = `${doc.manifest.name}@${doc.manifest.version}`;
  await report(d, { desiredSequence: doc.sequence, running: null, phase: 'downloading' });
  const services = Object.fromEntries(Object.entries(doc.spec.services).map(([name, s]) => [name, { image: s.image, status: 'running' as const, health: 'none' as const, restarts: 0 }]));
  await report(d, { desiredSequence: doc.sequence, running: release, phase: 'running', services });
  return true;
}

let done = 0;
await Promise.all(
  Array.from({ length: Math.min(job.concurrency, devices.length) }, async (_, c) => {
    // Ramp up, 50 connections every 25 ms: thousands of connects at once overflow the server's
    // accept backlog (511), and a dropped SYN is retried after 1, 3, 7… s, a tail that measures
    // the kernel, not Berth.
    await new Promise((r) => setTimeout(r, Math.floor(c / 50) * 25));
    while (done < devices.length) {
      if (head >= queue.length) {
        // Every remaining device is in a poll right now; wait for one to come back.
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      const d = queue[head++];
      if (await turn(d)) done++;
      else queue.push(d);
      // Keep the queue array from growing without bound.
      if (head > 100_000) {
        queue.splice(0, head);
        head = 0;
      }
    }
  }),
);
agent.destroy();
emit({ event: 'done', devices: devices.length, seconds: (performance.now() - t1) / 1000, polls, rejected, retries, retryReasons: Object.fromEntries(retryReasons) });
