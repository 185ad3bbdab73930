import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Hono } from 'hono';
import { afterAll, beforeAll, expect } from 'vitest';
import { createLogger } from '../../common/log.js';
import { serveHttp, type Served } from '../../common/serve.js';
import { buildApp } from '../../control-plane/app.js';
import type { ControlPlaneConfig, ControlPlaneContext } from '../../control-plane/context.js';
import type { DirectOptions } from '../../control-plane/device-api/direct-serve.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { ControlPlaneMetrics } from '../../control-plane/metrics.js';
import { call, csvOf, enroll, newDevice, type TestDevice } from './control-plane-support.js';

/**
 * For the tests of a route served on node:http ahead of Hono (desired-direct.ts, report-direct.ts):
 * a control plane on a real libSQL file, the Hono app of its context with metrics of its own, and
 * the direct listener alone on a server of its own on the same context, so that an answer from it
 * is the direct path's, never Hono's (a request it declines gets 599 there). Three devices enrolled:
 * one in good standing, one revoked, one whose record was imported again with a new key (a replaced
 * secure element; its old token, `tokens.old`, names an epoch that is no longer the device's).
 */
export interface DirectBeside {
  dir: string;
  cp: RunningControlPlane;
  admin: string;
  hono: Hono<any>;
  honoMetrics: ControlPlaneMetrics;
  direct: Served;
  directMetrics: ControlPlaneMetrics;
  devices: { active: TestDevice; revoked: TestDevice; superseded: TestDevice };
  /** By serial, and `old`: the superseded device's token from before its new record. */
  tokens: Record<string, string>;
  bearer(serial: string): { authorization: string };
}

type Listener = (ctx: ControlPlaneContext, opts: DirectOptions) => (req: IncomingMessage, res: ServerResponse) => boolean;

/** Registers the beforeAll that starts it all (fields filled in there) and the afterAll that stops it. */
export function directBeside(prefix: string, listener: Listener, config: Partial<Omit<ControlPlaneConfig, 'registryProxy' | 'dataDir' | 'publicUrl'>> = {}): DirectBeside {
  const log = createLogger('control-plane', { level: 'silent' });
  const [active, revoked, superseded] = ['0001', '0002', '0003'].map((n) => newDevice(`${prefix}-${n}`));
  const tokens: Record<string, string> = {};
  const t = {
    dir: mkdtempSync(join(tmpdir(), `berth-${prefix}-`)),
    honoMetrics: new ControlPlaneMetrics(),
    directMetrics: new ControlPlaneMetrics(),
    devices: { active, revoked, superseded },
    tokens,
    bearer: (serial: string) => ({ authorization: `Bearer ${tokens[serial]}` }),
  } as DirectBeside;
  beforeAll(async () => {
    t.cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(t.dir, 'berth.db')}`, dataDir: t.dir, registryProxy: null, log, config });
    t.admin = t.cp.adminToken as string;
    t.hono = buildApp(t.cp.ctx, t.honoMetrics);
    t.direct = await serveHttp({ fetch: () => new Response('declined', { status: 599 }), direct: listener(t.cp.ctx, { metrics: t.directMetrics }), listen: '127.0.0.1:0', log });
    const admin = { token: t.admin, type: 'text/csv' };
    expect((await call(t.cp.url, 'POST', '/v1/devices/import', { ...admin, text: csvOf([active, revoked, superseded]) })).status).toBe(200);
    for (const d of [active, revoked, superseded]) tokens[d.serial] = (await enroll(t.cp.url, d)).token;
    expect((await call(t.cp.url, 'POST', `/v1/devices/${revoked.serial}/revoke`, { token: t.admin })).status).toBe(200);
    expect((await call(t.cp.url, 'POST', '/v1/devices/import', { ...admin, text: csvOf([newDevice(superseded.serial)]) })).status).toBe(200);
    tokens.old = tokens[superseded.serial];
  });
  afterAll(async () => {
    await t.direct?.close(0);
    await t.cp?.close();
    rmSync(t.dir, { recursive: true, force: true });
  });
  return t;
}

/** The request counters of the /v1 routes: `{method,route,status}` → count. */
export async function requestCounters(metrics: ControlPlaneMetrics): Promise<Map<string, number>> {
  return new Map(
    (await metrics.render()).body
      .split('\n')
      .filter((l) => l.startsWith('berth_cp_http_requests_total{') && l.includes('/v1/'))
      .map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))]),
  );
}

/** What the tests compare of an answer: its status, the headers named, its body. */
export interface Seen {
  status: number;
  headers: Record<string, string | null>;
  body: string;
}

/** `connection`, when named, is `close` or null: node:http says keep-alive otherwise, an in-process Response nothing. */
export async function seenOf(r: Response, headers: string[]): Promise<Seen> {
  const value = (h: string) => (h === 'connection' ? (r.headers.get(h) === 'close' ? 'close' : null) : r.headers.get(h));
  return { status: r.status, headers: Object.fromEntries(headers.map((h) => [h, value(h)])), body: await r.text() };
}
