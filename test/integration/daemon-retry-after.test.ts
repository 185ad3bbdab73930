import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlClient, ControlError, retryAfterOf } from '../../edge-daemon/control.js';
import { createLogger } from '../../edge-daemon/gateway-log.js';
import { reportOf } from '../bench/devices.js';

/**
 * The edge daemon's control-plane client (edge-daemon/control.ts) over real HTTP on loopback: a
 * 429's or 503's Retry-After (a control plane whose database was busy answers 503 with one) reaches
 * the retry loops as ControlError.retryAfterMs, which report.ts, daemon.ts and identity.ts pass to
 * retry()'s `notBefore` (common/backoff.ts, its wait tested in test/unit/common-backoff.test.ts).
 */
describe('the daemon reads Retry-After', () => {
  let server: Server;
  let client: ControlClient;
  const answers: Record<string, [number, Record<string, string>]> = {
    '/v1/device/report': [503, { 'Retry-After': '2' }],
    '/v1/device/desired?wait=5': [429, { 'retry-after': '7' }],
    '/v1/device/pull-token': [503, { 'Retry-After': 'Fri, 07 Nov 2036 00:00:00 GMT' }],
  };

  beforeAll(async () => {
    server = createServer((req, res) => {
      const [status, headers] = answers[req.url ?? ''] ?? [404, {}];
      req.resume();
      res.writeHead(status, { 'content-type': 'application/json', ...headers }).end('{"error":{"code":"database-busy","message":"busy"}}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    client = new ControlClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, () => 'a-token', createLogger('edge-daemon', { level: 'silent' }));
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const refusalOf = (p: Promise<unknown>) =>
    p.then(
      () => null,
      (err: unknown) => (err instanceof ControlError ? [err.status, err.retryAfterMs, retryAfterOf(err)] : String(err)),
    );

  it("keeps a 503's and a 429's Retry-After in ms, and none of a date, another status or an error that is not the client's", async () => {
    expect(await refusalOf(client.report(reportOf({ sequence: 1, desiredSequence: null, running: null, phase: 'idle' })))).toEqual([503, 2000, 2000]);
    expect(await refusalOf(client.desired(undefined, 5))).toEqual([429, 7000, 7000]);
    expect(await refusalOf(client.pullToken())).toEqual([503, undefined, undefined]);
    expect(await refusalOf(client.claimLogRequests())).toEqual([404, undefined, undefined]);
    expect(retryAfterOf(Object.assign(new Error('busy'), { retryAfterMs: 5 }))).toBeUndefined();
  });
});
