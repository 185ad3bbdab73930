import Database from 'libsql';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { beforeAll, describe, expect, it } from 'vitest';
import { reportDirect } from '../../control-plane/device-api/report-direct.js';
import { reportOf } from '../bench/devices.js';
import { call } from './control-plane-support.js';
import { directBeside, requestCounters, seenOf, type Seen } from './direct-support.js';

/**
 * The device's report served on node:http ahead of the Hono adapter (device-api/report-direct.ts,
 * issue 17), over real HTTP on loopback against a real control plane on a real libSQL file, its
 * answers checked against protocol/ (contract-setup.ts): every refusal and answer is the Hono
 * route's on the same context, the request metrics count the same series, and a write the database
 * refuses busy (another connection holding SQLite's write lock past the busy timeout) answers 503
 * with Retry-After on both, nothing written, the same report accepted once the lock is free.
 */

describe('device reports on node:http', { timeout: 60_000 }, () => {
  const t = directBeside('rd', reportDirect);
  const { active: reporting, revoked } = t.devices;
  const bearer = t.bearer;
  let deviceId: string;
  beforeAll(async () => {
    deviceId = (await call(t.cp.url, 'GET', `/v1/devices/${reporting.serial}`, { token: t.admin })).body.id as string;
  });

  const seen = (r: Response) => seenOf(r, ['content-type', 'retry-after', 'connection']);
  const PATH = '/v1/device/report';
  /**
   * A report to the direct listener (node:http), then one to the Hono app of the same context (at
   * once when `together`); the body's length always sent, as a device's client sends it (a Request
   * made in-process carries none of its own).
   */
  async function both(headers: Record<string, string>, body: string | Buffer, honoBody = body, together = false): Promise<[Seen, Seen]> {
    const init = (b: string | Buffer) => ({ method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(b)), ...headers }, body: b });
    const byDirect = () => fetch(`${t.direct.url}${PATH}`, init(body)).then(seen);
    const viaHono = async () => seen(await t.hono.request(PATH, init(honoBody)));
    return together ? Promise.all([byDirect(), viaHono()]) : [await byDirect(), await viaHono()];
  }
  const json = (sequence: number) => JSON.stringify(reportOf({ sequence, desiredSequence: null, running: null, phase: 'idle' }));
  const history = async () => (await t.cp.ctx.db.all<{ sequence: number }>(sql`SELECT sequence FROM report_history WHERE device_id = ${deviceId} ORDER BY id`)).map((r) => Number(r.sequence));

  it('answers every refusal as the Hono route does, and counts it in the same series', async () => {
    const big = Buffer.alloc((1 << 20) + 1, 0x20);
    const cases: [Record<string, string>, string | Buffer, number, string][] = [
      [{}, json(1), 401, 'unauthenticated'],
      [{ authorization: 'Bearer not-a-token' }, json(1), 401, 'invalid-token'],
      [bearer(revoked.serial), json(1), 403, 'device-revoked'],
      [{ authorization: `Bearer ${t.tokens.old}` }, json(1), 401, 'token-superseded'],
      // The body limit comes before the device check, as app.ts's `/v1/*` limit runs before the sub-app's.
      [{}, big, 413, 'body-too-large'],
      [bearer(reporting.serial), big, 413, 'body-too-large'],
      [bearer(reporting.serial), '', 400, 'invalid-json'],
      [bearer(reporting.serial), '{"sequence":', 400, 'invalid-json'],
      [bearer(reporting.serial), JSON.stringify({ ...JSON.parse(json(1)), sequence: -1 }), 400, 'invalid-body'],
      [bearer(reporting.serial), JSON.stringify({ ...JSON.parse(json(1)), phase: 'dancing' }), 400, 'invalid-body'],
      [bearer(reporting.serial), '[]', 400, 'invalid-body'],
    ];
    for (const [headers, body, status, code] of cases) {
      const [byDirect, viaHono] = await both(headers, body);
      const what = `${JSON.stringify(headers).slice(0, 40)} ${String(body).slice(0, 40)}`;
      expect(byDirect, what).toEqual(viaHono);
      expect([what, byDirect.status, JSON.parse(byDirect.body).error.code, byDirect.headers.connection]).toEqual([what, status, code, status === 413 ? 'close' : null]);
    }
    expect(await history()).toEqual([]);
    const [byDirect, byHono] = await Promise.all([t.directMetrics, t.honoMetrics].map(requestCounters));
    expect(byDirect.size).toBeGreaterThan(2);
    expect(byDirect).toEqual(byHono);
  });

  it('accepts a newer report and ignores an older one, as the Hono route does', async () => {
    const newer = await both(bearer(reporting.serial), json(5), json(6));
    expect(newer[0]).toEqual(newer[1]);
    expect([newer[0].status, newer[0].body]).toEqual([202, '{"accepted":true}']);
    const stale = await both(bearer(reporting.serial), `\uFEFF${json(4)}`);
    expect(stale[0]).toEqual(stale[1]);
    expect([stale[0].status, stale[0].body]).toEqual([202, '{"accepted":false}']);
    expect(await history()).toEqual([5, 6]);
    // And through the control plane itself, whose listener answers reports through reportDirect (index.ts).
    const r = await call(t.cp.url, 'POST', PATH, { headers: { ...bearer(reporting.serial), 'x-request-id': 'trace.report-1' }, json: JSON.parse(json(7)) });
    expect([r.status, r.body, r.headers.get('x-request-id')]).toEqual([202, { accepted: true }, 'trace.report-1']);
    expect(await history()).toEqual([5, 6, 7]);
  });

  it('leaves to Hono the requests it does not take', async () => {
    const headers = { ...bearer(reporting.serial), 'content-type': 'application/json' };
    const declined: [string, RequestInit][] = [
      [`${PATH}?x=1`, { method: 'POST', headers, body: json(8) }],
      [`${PATH}/`, { method: 'POST', headers, body: json(8) }],
      [PATH, { method: 'PUT', headers, body: json(8) }],
      [PATH, { method: 'GET', headers }],
      // A chunked body: Hono's streamed limit reads it.
      [PATH, { method: 'POST', headers, body: new Blob([json(7)]).stream(), duplex: 'half' } as RequestInit],
    ];
    for (const [path, init] of declined) expect([path, init.method, (await fetch(`${t.direct.url}${path}`, init)).status]).toEqual([path, init.method, 599]);
    expect(await history()).toEqual([5, 6, 7]);
  });

  it('answers a write refused busy 503 with Retry-After, writes nothing, and accepts the same report after', async () => {
    const other = new Database(join(t.dir, 'berth.db'));
    try {
      other.exec('BEGIN IMMEDIATE');
      // Held past the control plane's busy timeout (5 s): the batch holding both reports is refused at BEGIN.
      const [byDirect, viaHono] = await both(bearer(reporting.serial), json(9), json(10), true);
      expect(byDirect).toEqual(viaHono);
      expect([byDirect.status, byDirect.headers['retry-after'], JSON.parse(byDirect.body).error.code]).toEqual([503, '1', 'database-busy']);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    expect(await history()).toEqual([5, 6, 7]);
    const again = await both(bearer(reporting.serial), json(9), json(10));
    expect(again.map((s) => [s.status, s.body])).toEqual([
      [202, '{"accepted":true}'],
      [202, '{"accepted":true}'],
    ]);
    expect(await history()).toEqual([5, 6, 7, 9, 10]);
    const [byDirect, byHono] = await Promise.all([t.directMetrics, t.honoMetrics].map(requestCounters));
    expect([...byDirect].filter(([k]) => k.includes('"503"'))).toEqual([[expect.stringContaining('/v1/device/report'), 1]]);
    expect(byDirect).toEqual(byHono);
  });
});
