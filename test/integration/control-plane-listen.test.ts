import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { call, csvOf, enroll, newDevice } from './control-plane-support.js';

/**
 * The control plane's listening sockets over real HTTP on loopback: `--listen` with both loopbacks
 * (a device enrolled on one address polls on the other), and keep-alive connections that outlive
 * the clients' reuse (a reused idle connection is answered, not reset).
 */

/** One raw keep-alive connection: each `get` writes a request and resolves with the answer's head. */
function rawConnection(url: string): { get(path: string): Promise<string>; closed: Promise<void>; socket: Socket } {
  const u = new URL(url);
  const socket = connect({ host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) });
  let buf = '';
  let waiting: ((head: string) => void) | null = null;
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => {
    buf += d;
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0 || !waiting) return;
    const head = buf.slice(0, end);
    const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    if (buf.length < end + 4 + length) return;
    buf = buf.slice(end + 4 + length);
    const w = waiting;
    waiting = null;
    w(head);
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  return {
    socket,
    closed,
    get: (path) =>
      new Promise<string>((resolve, reject) => {
        waiting = resolve;
        socket.once('error', reject);
        void closed.then(() => reject(new Error('connection closed by the server')));
        socket.write(`GET ${path} HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`);
      }),
  };
}

describe('control plane listening sockets', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-listen-'));
  let cp: RunningControlPlane;

  beforeAll(async () => {
    cp = await startControlPlane({ listen: '127.0.0.1:0,[::1]:0', db: `file:${join(dir, 'berth.db')}`, dataDir: dir, registryProxy: null, log: createLogger('cp', { level: 'silent' }) });
  });

  afterAll(async () => {
    await cp?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the same control plane on both loopbacks: a device enrolled on IPv4 polls on IPv6', async () => {
    expect(cp.urls).toHaveLength(2);
    expect(cp.urls[0]).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(cp.urls[1]).toMatch(/^http:\/\/\[::1\]:\d+$/);
    expect(cp.url).toBe(cp.urls[0]);
    const d = newDevice('gw-dual-1');
    expect((await call(cp.urls[0], 'POST', '/v1/devices/import', { token: cp.adminToken, text: csvOf([d]), type: 'text/csv' })).status).toBe(200);
    const { token } = await enroll(cp.urls[0], d);
    expect((await call(cp.urls[1], 'GET', '/v1/device/desired', { token })).status).toBe(204);
    expect((await call(cp.urls[1], 'GET', `/v1/devices/${d.serial}`, { token: cp.adminToken })).body.status).toBe('enrolled');
  });

  it('announces a keep-alive longer than a client reuses an idle connection, and answers on one idle past Node’s old 5 s', async () => {
    const c = rawConnection(cp.urls[1]);
    try {
      const first = await c.get('/healthz');
      expect(first).toMatch(/^HTTP\/1\.1 200/);
      // Node's global agent (the daemon's client) reuses an idle socket for 5 s at most.
      const hint = Number(/\r\nkeep-alive:\s*timeout=(\d+)/i.exec(first)?.[1]);
      expect(hint).toBeGreaterThan(5);
      await sleep(5_500);
      expect(await c.get('/healthz')).toMatch(/^HTTP\/1\.1 200/);
    } finally {
      c.socket.destroy();
    }
  });

  it('queues up to 4,096 connections not yet accepted (a fleet reconnecting at once), not Node’s 511', () => {
    // A listening socket's Send-Q, as ss shows it, is its accept backlog.
    const backlogs = cp.urls.map((u) => {
      const out = execFileSync('ss', ['-Hltn', `sport = :${new URL(u).port}`], { encoding: 'utf8' });
      return Number(out.trim().split(/\s+/)[2]);
    });
    expect(backlogs).toHaveLength(2);
    for (const b of backlogs) expect(b).toBe(Math.min(4096, Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'))));
  });

  it('refuses a list with an empty entry, naming the flag, before anything is written', async () => {
    await expect(startControlPlane({ listen: '127.0.0.1:0,', db: `file:${join(dir, 'other', 'berth.db')}`, dataDir: join(dir, 'other'), registryProxy: null, log: createLogger('cp', { level: 'silent' }) })).rejects.toThrow(/--listen "127\.0\.0\.1:0,": an empty address in the list/);
    expect(existsSync(join(dir, 'other'))).toBe(false);
  });

  it('leaves no address bound when a later one of the list is taken', async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '::1', () => resolve()));
    const busy = (taken.address() as { port: number }).port;
    const probe: Server = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
    const free = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    try {
      await expect(startControlPlane({ listen: `127.0.0.1:${free},[::1]:${busy}`, db: `file:${join(dir, 'busy.db')}`, dataDir: join(dir, 'busy'), registryProxy: null, log: createLogger('cp', { level: 'silent' }) })).rejects.toThrow(/EADDRINUSE/);
      // The first address was bound and then let go: it can be listened on again.
      const again: Server = createServer();
      await new Promise<void>((resolve, reject) => {
        again.once('error', reject);
        again.listen(free, '127.0.0.1', () => resolve());
      });
      await new Promise<void>((resolve) => again.close(() => resolve()));
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  });
});
