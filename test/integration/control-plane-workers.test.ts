import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'libsql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceReport } from '../../protocol/device.js';
import { freePort, rigFromEnv } from '../rig/index.js';
import { createLogger } from '../../common/log.js';
import { DEFAULTS, startControlPlane } from '../../control-plane/index.js';
import { forgeImage } from '../rig/forge.js';
import { challengeFor, csvOf, jwtPayload, newDevice, type TestDevice } from './control-plane-support.js';
import { jsonLogLines, loggedLine, type LogLine } from './fleet-process.js';
import { signBytes } from '../../protocol/keys.js';
import { enrollProofBytes } from '../../protocol/device.js';

const ROOT = resolve(import.meta.dirname, '../..');

interface Answer {
  status: number;
  worker: string | undefined;
  body: any;
  logRequests?: string;
}

/** A keep-alive connection that reaches `worker`: each request on it is answered there. */
/**
 * How long to keep opening connections until one reaches a given worker. Which worker accepts is
 * the kernel's choice (SCHED_NONE): on a loaded machine the worker that is awake takes them all for
 * a while, so a count of tries is not enough; a pause between tries lets the other one run.
 */
const REACH_WORKER_MS = 30_000;

async function connectionTo(base: string, worker: string): Promise<Agent> {
  const seen: string[] = [];
  for (const deadline = Date.now() + REACH_WORKER_MS; Date.now() < deadline; await sleep(20)) {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const reached = (await once(base, 'GET', '/healthz', { agent })).worker;
    if (reached === worker) return agent;
    seen.push(String(reached));
    agent.destroy();
  }
  throw new Error(`no connection reached worker ${worker} in ${REACH_WORKER_MS} ms (${seen.length} reached ${[...new Set(seen)].join(', ')})`);
}

/**
 * One request on a connection of its own: each new connection goes to whichever worker accepts it
 * first (cluster.ts, SCHED_NONE), so a few calls reach both workers.
 */
function once(base: string, method: string, path: string, opts: { token?: string; json?: unknown; text?: string; type?: string; agent?: Agent } = {}): Promise<Answer> {
  const body = opts.json !== undefined ? JSON.stringify(opts.json) : opts.text;
  const headers: Record<string, string> = {};
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (body !== undefined) headers['content-type'] = opts.json !== undefined ? 'application/json' : (opts.type ?? 'text/plain');
  return new Promise((resolvePromise, reject) => {
    const req = request(base + path, { method, headers, agent: opts.agent ?? false }, (res) => {
      const logRequests = res.headers['berth-log-requests'];
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : null;
        } catch {
          // not JSON
        }
        resolvePromise({ status: res.statusCode ?? 0, worker: res.headers['x-berth-worker'] as string | undefined, body: parsed, logRequests: logRequests as string | undefined });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * `berth control-plane --workers 2` as a real process tree on one port and one libSQL file:
 * requests spread over both workers, a killed worker is replaced, writes through both are all
 * kept, and a campaign advances on reports whichever worker takes them.
 */
describe('control plane with --workers 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-cp-workers-'));
  let child: ChildProcess;
  let base: string;
  let admin: string;
  let logs = '';

  /** The parsed JSON log lines so far. */
  const lines = () => jsonLogLines(logs);
  const logged = (what: string, predicate: (line: LogLine) => boolean) =>
    loggedLine(() => logs, what, predicate, () => (child.exitCode !== null ? `control plane exited ${child.exitCode}` : undefined));

  /** Calls until each worker has answered once; the answers by worker. */
  async function fromBoth(call: () => Promise<Answer>): Promise<Map<string, Answer>> {
    const seen = new Map<string, Answer>();
    for (const deadline = Date.now() + REACH_WORKER_MS; seen.size < 2 && Date.now() < deadline; await sleep(20)) {
      const a = await call();
      if (a.worker) seen.set(a.worker, a);
    }
    return seen;
  }

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    child = spawn(process.execPath, [join(ROOT, 'dist/bin/berth.js'), 'control-plane', '--workers', '2', '--listen', `127.0.0.1:${port}`, '--db', `file:${join(dir, 'berth.db')}`, '--data-dir', dir], {
      env: { ...process.env, BERTH_LOG_LEVEL: 'info', BERTH_ADMIN_TOKEN: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (b: Buffer) => (logs += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (logs += b.toString()));
    await logged('listening', (l) => l.msg === 'control plane listening' && l.workers === 2);
    admin = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
  }, 120_000);

  afterAll(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('prepares once in worker 1, and serves requests from both workers', async () => {
    const all = lines();
    // Migrations and the first admin token happened once, in worker 1, before worker 2 started.
    const migrations = all.filter((l) => l.msg === 'migration applied');
    expect(migrations.length).toBeGreaterThan(0);
    expect(migrations.every((l) => l.worker === 1)).toBe(true);
    expect(all.filter((l) => l.msg === 'created the first admin token; read it from this file').map((l) => l.worker)).toEqual([1]);
    const firstListening = all.findIndex((l) => l.msg === 'control plane listening' && l.worker === 1);
    expect(all.findIndex((l) => l.worker === 2)).toBeGreaterThan(firstListening);
    expect(logs).not.toContain(admin);
    expect(all.filter((l) => l.msg === 'control plane listening' && l.worker !== undefined).map((l) => l.worker).sort()).toEqual([1, 2]);
    // Two workers write their own reports and enrollments: no writer process (cluster-size.ts, WRITER_FROM_WORKERS).
    expect(all.find((l) => l.msg === 'control plane listening' && l.workers === 2)?.pids).toHaveLength(2);
    expect(all.filter((l) => l.msg === 'writer ready')).toEqual([]);

    const answers = await fromBoth(() => once(base, 'GET', '/v1/devices', { token: admin }));
    expect([...answers.keys()].sort()).toEqual(['1', '2']);
    for (const a of answers.values()) expect(a.status).toBe(200);
    // Exactly one worker holds the singletons lease (drives campaigns).
    for (let i = 0; i < 300 && (await leaseHolders()).length !== 1; i++) await sleep(100);
    expect(await leaseHolders()).toHaveLength(1);
  });

  /** The workers whose /metrics say they hold the singletons lease. */
  async function leaseHolders(): Promise<string[]> {
    const metrics = await fromBoth(() => once(base, 'GET', '/metrics', { token: admin }));
    expect(metrics.size).toBe(2);
    return [...metrics].filter(([, a]) => /^berth_cp_lease_held 1$/m.test(String(a.body))).map(([w]) => w);
  }

  it('keeps every write made through both workers at once', async () => {
    const batches = Array.from({ length: 16 }, (_, b) => Array.from({ length: 25 }, (_, i) => newDevice(`wr-${b}-${i}`)));
    // Four connections to each worker: which worker accepts a new connection is the kernel's choice (cluster.ts).
    const agents: Agent[] = [];
    for (const worker of ['1', '2', '1', '2', '1', '2', '1', '2']) agents.push(await connectionTo(base, worker));
    const answers = await Promise.all(batches.map((devices, b) => once(base, 'POST', '/v1/devices/import', { token: admin, text: csvOf(devices, () => 'site=writes'), type: 'text/csv', agent: agents[b % agents.length] })));
    for (const agent of agents) agent.destroy();
    expect(answers.map((a) => a.status)).toEqual(batches.map(() => 200));
    expect(new Set(answers.map((a) => a.worker))).toEqual(new Set(['1', '2']));
    const list = await once(base, 'GET', '/v1/devices?selector=site%3Dwrites&limit=1000', { token: admin });
    expect(list.status).toBe(200);
    expect(list.body.devices.map((d: { serial: string }) => d.serial).sort()).toEqual(batches.flat().map((d) => d.serial).sort());
  });

  it('commits the enrollments and reports both workers take at once, each worker writing its own', async () => {
    const devices = Array.from({ length: 24 }, (_, i) => newDevice(`own-${i}`));
    expect((await once(base, 'POST', '/v1/devices/import', { token: admin, text: csvOf(devices, () => 'site=own'), type: 'text/csv' })).status).toBe(200);
    const agents: Agent[] = [];
    for (const worker of ['1', '2', '1', '2', '1', '2', '1', '2']) agents.push(await connectionTo(base, worker));
    const agentOf = (i: number) => agents[i % agents.length];
    const challenges = await Promise.all(devices.map((d) => challengeFor(base, d.serial)));
    const enrolled = await Promise.all(devices.map((d, i) => once(base, 'POST', '/v1/enroll', { json: { serial: d.serial, challenge: challenges[i], signature: signBytes(d.privateKey, enrollProofBytes(d.serial, challenges[i])) }, agent: agentOf(i) })));
    expect(enrolled.map((a) => a.status)).toEqual(devices.map(() => 200));
    expect(new Set(enrolled.map((a) => a.worker))).toEqual(new Set(['1', '2']));
    const report: DeviceReport = { sequence: 1, desiredSequence: null, running: null, phase: 'downloading', bytes: { done: 0, total: 0 }, services: {}, at: new Date().toISOString() };
    const reported = await Promise.all(enrolled.map((e, i) => once(base, 'POST', '/v1/device/report', { token: e.body.token as string, json: report, agent: agentOf(i + 1) })));
    for (const agent of agents) agent.destroy();
    expect(reported.map((a) => [a.status, a.body])).toEqual(devices.map(() => [202, { accepted: true }]));
    expect(new Set(reported.map((a) => a.worker))).toEqual(new Set(['1', '2']));
    // Acknowledged means committed: the file, read by a connection of the test's own, holds every one.
    const db = new Database(join(dir, 'berth.db'), { readonly: true });
    try {
      const rows = db.prepare("SELECT d.serial, d.status, r.sequence, r.phase FROM devices d JOIN reported r ON r.device_id = d.id WHERE d.serial LIKE 'own-%' ORDER BY d.serial").all() as { serial: string; status: string; sequence: number; phase: string }[];
      expect(rows.map((r) => [r.serial, r.status, Number(r.sequence), r.phase]).sort()).toEqual(devices.map((d) => [d.serial, 'enrolled', 1, 'downloading']).sort());
    } finally {
      db.close();
    }
  });

  it('advances a campaign on reports taken by either worker', async () => {
    const rig = rigFromEnv();
    const v1 = await forgeImage(rig.registry, 'berth-test/workers-app', 'v1', { layers: [{ files: { 'release.txt': 'v1\n' } }] });
    const v2 = await forgeImage(rig.registry, 'berth-test/workers-app', 'v2', { layers: [{ files: { 'release.txt': 'v2\n' } }] });
    for (const [version, image] of [['1.0.0', v1.tagReference], ['2.0.0', v2.tagReference]] as const) {
      const r = await once(base, 'POST', '/v1/manifests', { token: admin, text: `name: app\nversion: ${version}\nservices:\n  web:\n    image: ${image}\n`, type: 'application/yaml' });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
    }
    const keys = Array.from({ length: 6 }, (_, i) => newDevice(`camp-${i}`));
    expect((await once(base, 'POST', '/v1/devices/import', { token: admin, text: csvOf(keys, () => 'site=camp'), type: 'text/csv' })).status).toBe(200);
    const tokens = new Map<string, string>();
    for (const k of keys) tokens.set(k.serial, await enrollOnce(base, k));

    const created = await once(base, 'POST', '/v1/campaigns', { token: admin, json: { manifest: 'app@2.0.0', selector: 'site=camp', waves: ['1', '50%', '100%'], success: 1, maxFailures: 0, soak: '1s', start: true } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.id as string;
    const reportedBy = new Set<string>();
    let seq = 0;
    // Every device given 2.0.0 reports it running, each report on a new connection; until completed.
    for (let round = 0; round < 600; round++) {
      const status = await once(base, 'GET', `/v1/campaigns/${id}`, { token: admin });
      if (status.body.status === 'completed') break;
      expect(status.body.status).toBe('running');
      for (const k of keys) {
        const token = tokens.get(k.serial) as string;
        const d = await once(base, 'GET', '/v1/device/desired', { token });
        if (d.status !== 200) continue;
        const doc = jwtPayload(d.body.document as string);
        if (doc.manifest.version !== '2.0.0') continue;
        const report: DeviceReport = { sequence: ++seq, desiredSequence: doc.sequence, running: 'app@2.0.0', phase: 'running', bytes: { done: 0, total: 0 }, services: { web: { image: 'app', status: 'running', health: 'healthy', restarts: 0 } }, at: new Date().toISOString() };
        const r = await once(base, 'POST', '/v1/device/report', { token, json: report });
        expect(r.status, JSON.stringify(r.body)).toBe(202);
        reportedBy.add(r.worker as string);
      }
      await sleep(200);
    }
    const done = await once(base, 'GET', `/v1/campaigns/${id}`, { token: admin });
    expect(done.body.status).toBe('completed');
    expect(done.body.devices).toMatchObject({ succeeded: 6, failed: 0, pending: 0 });
    expect([...reportedBy].sort()).toEqual(['1', '2']);
  });

  it("relays a gateway's logs to an operator whose request reached the other worker", async () => {
    const key = newDevice('logs-1');
    expect((await once(base, 'POST', '/v1/devices/import', { token: admin, text: csvOf([key], () => 'site=logs'), type: 'text/csv' })).status).toBe(200);
    const token = await enrollOnce(base, key);
    const [operatorSide, gatewaySide] = [await connectionTo(base, '1'), await connectionTo(base, '2')];
    // The operator asks through worker 1 and reads the stream as it comes.
    const read = new Promise<{ worker: string | undefined; body: string }>((resolveRead, reject) => {
      const req = request(`${base}/v1/devices/logs-1/logs?tail=2`, { headers: { authorization: `Bearer ${admin}` }, agent: operatorSide }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolveRead({ worker: res.headers['x-berth-worker'] as string | undefined, body }));
      });
      req.on('error', reject);
      req.end();
    });
    // The gateway, on worker 2, sees the request in its desired-state answer, claims it and uploads.
    let waiting: string | undefined;
    for (let i = 0; i < 100 && waiting !== '1'; i++) {
      waiting = (await once(base, 'GET', '/v1/device/desired', { token, agent: gatewaySide })).logRequests;
      if (waiting !== '1') await sleep(100);
    }
    expect(waiting).toBe('1');
    const claim = await once(base, 'POST', '/v1/device/logs/claim', { token, json: {}, agent: gatewaySide });
    expect([claim.status, claim.worker, claim.body.requests.length]).toEqual([200, '2', 1]);
    const lines = [{ service: 'app', stream: 'stdout', line: 'first' }, { service: 'app', stream: 'stderr', line: 'second' }];
    const upload = await once(base, 'POST', `/v1/device/logs/${claim.body.requests[0].id}`, { token, text: lines.map((l) => JSON.stringify(l)).join('\n') + '\n', type: 'application/x-ndjson', agent: gatewaySide });
    expect([upload.status, upload.worker, upload.body]).toEqual([200, '2', { lines: 2, ended: 'done' }]);
    const got = await read;
    expect(got.worker).toBe('1');
    expect(got.body.trim().split('\n').map((l) => JSON.parse(l))).toEqual(lines);
    operatorSide.destroy();
    gatewaySide.destroy();
  });

  // The kernel gives each worker whatever share of an address's connections it accepts (SCHED_NONE),
  // so the budget is the primary's: neither halved on the worker that takes them all, nor doubled.
  // Each case from its own loopback address, a budget of its own (240 at once, 2 a second back).
  it('keeps one enrollment budget per address for both workers', async () => {
    const burst = DEFAULTS.enrollBurst;
    const oneConnection = new Agent({ keepAlive: true, maxSockets: 1 });
    let began = Date.now();
    const alone: ChallengeAnswer[] = [];
    // Until the first refusal: on a loaded machine the bucket refills (enrollPerSecond) while the
    // requests run, so a fixed count past the burst can all be granted. The cap only ends a run in
    // which the budget never refuses, and the check below then fails.
    for (let i = 0; i < burst + 200 && alone.at(-1)?.status !== 429; i++) alone.push(await challengeFrom(base, '127.0.0.2', `budget-a-${i}`, oneConnection));
    oneConnection.destroy();
    const regainedAlone = Math.ceil(((Date.now() - began) / 1000) * DEFAULTS.enrollPerSecond);
    expect(new Set(alone.map((a) => a.worker)).size).toBe(1);
    expect(alone.filter((a) => a.status === 200).length).toBeGreaterThanOrEqual(burst);
    expect(alone.filter((a) => a.status === 200).length).toBeLessThanOrEqual(burst + regainedAlone);
    expect(alone.at(-1)?.status).toBe(429);

    began = Date.now();
    const spread: ChallengeAnswer[] = [];
    for (let i = 0; i < burst + 60; i += 20) spread.push(...(await Promise.all(Array.from({ length: 20 }, (_, j) => challengeFrom(base, '127.0.0.3', `budget-b-${i + j}`)))));
    const regained = Math.ceil(((Date.now() - began) / 1000) * DEFAULTS.enrollPerSecond);
    const granted = spread.filter((a) => a.status === 200);
    expect(new Set(granted.map((a) => a.worker))).toEqual(new Set(['1', '2']));
    expect(granted.length).toBeGreaterThanOrEqual(burst);
    expect(granted.length).toBeLessThanOrEqual(burst + regained);
    expect(spread.filter((a) => a.status === 429).every((a) => Number(a.retryAfter) >= 1)).toBe(true);
  });

  it('replaces a killed worker, and stops every worker on SIGTERM', async () => {
    const started = lines().find((l) => l.msg === 'control plane listening' && l.workers === 2) as Record<string, any>;
    const [, victim] = started.pids as number[];
    process.kill(victim, 'SIGKILL');
    await logged('the death', (l) => l.msg === 'worker 2 killed by SIGKILL; starting another');
    const replaced = await logged('the replacement', (l) => l.msg === 'worker 2 replaced and listening');
    expect(replaced.pid).not.toBe(victim);
    const answers = await fromBoth(() => once(base, 'GET', '/healthz'));
    expect([...answers.keys()].sort()).toEqual(['1', '2']);
    // Whichever held the lease, one worker holds it again.
    for (let i = 0; i < 300 && (await leaseHolders()).length !== 1; i++) await sleep(100);
    expect(await leaseHolders()).toHaveLength(1);

    const pids = [started.pids[0] as number, replaced.pid as number];
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    expect(code, logs).toBe(0);
    expect(lines().filter((l) => l.msg === 'control plane stopped').map((l) => l.worker ?? 0).sort()).toEqual([0, 1, 2]);
    for (const pid of pids) expect(alive(pid), `worker pid ${pid}`).toBe(false);
  });
});

describe('a control plane started as one worker of several', () => {
  it('marks its answers with its worker id', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-cp-worker-'));
    const cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'berth.db')}`, dataDir: dir, log: createLogger('control-plane', { level: 'silent' }), worker: { id: 3, of: 4 } });
    try {
      expect((await once(cp.url, 'GET', '/healthz')).worker).toBe('3');
    } finally {
      await cp.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Enrolls with the challenge and the proof each on its own connection (often two workers). */
async function enrollOnce(base: string, d: TestDevice): Promise<string> {
  const challenge = await challengeFor(base, d.serial);
  const r = await once(base, 'POST', '/v1/enroll', { json: { serial: d.serial, challenge, signature: signBytes(d.privateKey, enrollProofBytes(d.serial, challenge)) } });
  if (r.status !== 200) throw new Error(`enroll ${d.serial}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.token as string;
}

type ChallengeAnswer = { status: number; worker?: string; retryAfter?: string };

/** An enrollment challenge asked from `from` (a loopback address: each has its own budget). */
function challengeFrom(base: string, from: string, serial: string, agent: Agent | false = false): Promise<ChallengeAnswer> {
  return new Promise((resolveAnswer, reject) => {
    const req = request(`${base}/v1/enroll/challenge`, { method: 'POST', localAddress: from, agent, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolveAnswer({ status: res.statusCode ?? 0, worker: res.headers['x-berth-worker'] as string | undefined, retryAfter: res.headers['retry-after'] as string | undefined }));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ serial }));
  });
}
