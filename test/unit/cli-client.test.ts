import { describe, expect, it } from 'vitest';
import { BerthClient, ContractError } from '../../cli/client.js';
import { parseServerError } from '../../cli/http.js';
import { driftOf, toCampaign, toTwin, waveState } from '../../cli/views.js';
import { campaignView } from '../../protocol/campaigns.js';
import { deviceTwin } from '../../protocol/devices.js';

const D1 = 'sha256:' + '1'.repeat(64);
const D2 = 'sha256:' + '2'.repeat(64);

describe('server errors', () => {
  it('reads the error envelope, with the field', () => {
    const body = { error: { code: 'invalid', message: 'waves[1]: must grow', field: 'waves' }, conflicts: [] };
    expect(parseServerError(400, 'Bad Request', JSON.stringify(body))).toEqual({ status: 400, code: 'invalid', message: 'waves[1]: must grow', field: 'waves', body });
  });
  it('falls back to the first line of a non-envelope body, then the status text', () => {
    expect(parseServerError(502, 'Bad Gateway', '<html>\nproxy</html>')).toEqual({ status: 502, code: '502', message: '<html>' });
    expect(parseServerError(503, 'Service Unavailable', '')).toMatchObject({ message: 'Service Unavailable' });
  });
});

describe('twin', () => {
  const svc = (drift: string, extra: Record<string, unknown> = {}) => ({ desiredImage: `r/web@${D2}`, reportedImage: `r/web@${D2}`, status: 'running', health: 'healthy', restarts: 0, lastError: null, drift, ...extra });
  // Parsed with the contract's schema: the fixtures are what the server really sends.
  const serverTwin = (over: Record<string, unknown>) => deviceTwin.parse({
    id: 'dev_1', serial: 'gw-1', labels: { site: 'b' }, status: 'enrolled', createdAt: '2026-01-01T00:00:00.000Z', enrolledAt: '2026-01-01T00:01:00.000Z',
    previousRelease: 'demo@1', online: true, lastSeenAt: '2026-01-01T00:02:00.000Z',
    desired: { sequence: 4, release: 'demo@2', campaign: 'cmp_1' },
    reported: { sequence: 9, desiredSequence: 4, running: 'demo@2', phase: 'running', bytes: { done: 5, total: 10 }, error: null, at: '2026-01-01T00:02:00.000Z', receivedAt: '2026-01-01T00:02:00.000Z' },
    inSync: true,
    services: { web: svc('in-sync') },
    ...over,
  });
  it('maps the server twin: device, desired, reported with bytes, services', () => {
    const t = toTwin(serverTwin({}));
    expect(t.device).toEqual({ serial: 'gw-1', id: 'dev_1', status: 'enrolled', labels: { site: 'b' }, online: true, lastSeenAt: '2026-01-01T00:02:00.000Z', desired: 'demo@2', desiredSequence: 4, phase: 'running' });
    expect(t.desired).toEqual({ release: 'demo@2', sequence: 4, campaign: 'cmp_1' });
    expect(t.reported?.bytes).toEqual({ done: 5, total: 10 });
    expect(t.previousRelease).toBe('demo@1');
    expect(t.inSync).toBe(true);
    expect(t.drift).toEqual([]);
  });
  it('puts each difference in words: the release, then every service out of sync', () => {
    const t = toTwin(serverTwin({
      inSync: false,
      reported: { sequence: 9, desiredSequence: 4, running: 'demo@1', phase: 'rolled-back', bytes: { done: 0, total: 0 }, error: 'web unhealthy', at: '2026-01-01T00:02:00.000Z', receivedAt: '2026-01-01T00:02:00.000Z' },
      services: {
        web: svc('image-differs', { reportedImage: `r/web@${D1}` }),
        db: svc('not-running', { status: 'exited' }),
        cache: svc('unexpected', { desiredImage: null, reportedImage: `r/cache@${D1}` }),
        ok: svc('in-sync'),
      },
    }));
    expect(t.drift).toEqual([
      'release: desired demo@2, running demo@1',
      `service web image-differs: desired r/web@${D2}, reported r/web@${D1}`,
      'service db not-running: exited',
      `service cache unexpected (runs r/cache@${D1}, not in the desired release)`,
    ]);
    expect(t.reported?.error).toBe('web unhealthy');
  });
  it('says when a device with a desired release has not reported yet; nothing when nothing is desired', () => {
    expect(driftOf({ desired: { release: 'demo@2', sequence: 1, campaign: null }, reported: null, services: {} })).toEqual(['no report yet (desired demo@2)']);
    expect(toTwin(serverTwin({ desired: null, reported: null, services: {}, inSync: false })).drift).toEqual([]);
  });
});

describe('campaign mapping', () => {
  const server = (over: Record<string, unknown>) => campaignView.parse({
    id: 'cmp_1', name: 'roll v2', manifest: 'demo@2', selector: 'site=b', status: 'running', statusReason: null, currentWave: 2,
    createdAt: '2026-01-01T00:00:00.000Z', createdBy: 'operator:tok_1', startedAt: '2026-01-01T00:00:01.000Z', finishedAt: null,
    rules: { waves: ['1', '50%', '100%'], success: 0.95, maxFailures: 0.1, deviceTimeout: '10m', soak: '0', onFailure: 'rollback' },
    soakUntil: null, window: null, bytes: { moved: 0, full: 0, devices: 0, viaDelta: 0 },
    devices: { pending: 1, assigned: 1, succeeded: 2, failed: 0, 'rolled-back': 0, left: 0 },
    waves: [
      { wave: 1, target: '1', cumulativeDevices: 1, devices: { pending: 0, assigned: 0, succeeded: 1, failed: 0, 'rolled-back': 0, left: 0 } },
      { wave: 2, target: '50%', cumulativeDevices: 2, devices: { pending: 0, assigned: 1, succeeded: 1, failed: 0, 'rolled-back': 0, left: 0 } },
      { wave: 3, target: '100%', cumulativeDevices: 4, devices: { pending: 1, assigned: 0, succeeded: 0, failed: 0, 'rolled-back': 0, left: 0 } },
    ],
    failing: [],
    ...over,
  });
  it('sizes waves from cumulative targets (or what they hold) and names their states', () => {
    const c = toCampaign(server({}));
    expect(c.waves.map((w) => [w.index, w.size, w.state])).toEqual([[1, 1, 'passed'], [2, 1 + 1, 'rolling'], [3, 2, 'pending']]);
    expect(c.rules).toMatchObject({ success: 0.95, onFailure: 'rollback', waves: ['1', '50%', '100%'] });
    expect(c.createdAt).toBe('2026-01-01T00:00:00.000Z');
  });
  it('carries the end state into the current wave and skips the rest when a campaign fails', () => {
    const c = toCampaign(server({ status: 'aborted', statusReason: 'wave 2: 1 of 1 failed', currentWave: 2, failing: [{ deviceId: 'dev_9', serial: 'gw-9', wave: 2, state: 'failed', error: 'web unhealthy', at: null }] }));
    expect(c.waves.map((w) => w.state)).toEqual(['passed', 'aborted', 'skipped']);
    expect(c.failing).toEqual([{ serial: 'gw-9', wave: 2, error: 'web unhealthy' }]);
    expect(c.statusReason).toBe('wave 2: 1 of 1 failed');
  });
  it('names wave states for every campaign status', () => {
    expect(waveState(1, 1, 'draft', false)).toBe('pending');
    expect(waveState(1, 1, 'running', true)).toBe('soaking');
    expect(waveState(2, 1, 'paused', false)).toBe('pending');
    expect(waveState(1, 1, 'paused', false)).toBe('paused');
    expect(waveState(3, 1, 'completed', false)).toBe('passed');
  });
});

describe('answers are parsed with the contract', () => {
  const answering = (status: number, body: unknown) =>
    new BerthClient('http://cp.invalid', 'berth_t', (async () => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } })) as typeof fetch);
  const import_ = { created: 2, updated: 0, unchanged: 1 };

  it('reads an answer the contract describes', async () => {
    expect(await answering(200, import_).importDevices('serial,public_key,labels\n', 'text/csv')).toEqual({ total: 3, ...import_ });
  });

  it('refuses a renamed field, naming the route and the field', async () => {
    const err = await answering(200, { imported: 2, updated: 0, unchanged: 1 }).importDevices('', 'text/csv').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContractError);
    expect((err as Error).message).toBe(
      "importing manufacturing records failed: the control plane's answer to POST /v1/devices/import (200) does not match the contract: created: Invalid input: expected number, received undefined",
    );
  });

  it('refuses progress bytes in another spelling than the device sends', async () => {
    const twin = {
      id: 'dev_1', serial: 'gw-1', labels: {}, status: 'enrolled', createdAt: '2026-01-01T00:00:00.000Z', enrolledAt: null, previousRelease: null,
      online: false, lastSeenAt: null, desired: null, inSync: false, services: {},
      reported: { sequence: 1, desiredSequence: null, running: null, phase: 'idle', bytesDone: 0, bytesTotal: 0, error: null, at: '2026-01-01T00:00:00.000Z', receivedAt: '2026-01-01T00:00:00.000Z' },
    };
    await expect(answering(200, twin).twin('gw-1')).rejects.toThrow(/GET \/v1\/devices\/:serial \(200\) does not match the contract: reported\.bytes: /);
  });

  it('refuses a success status the route does not list', async () => {
    await expect(answering(201, import_).importDevices('', 'text/csv')).rejects.toThrow(/\(201\) does not match the contract: status 201 is not one it lists \(200, 422\)/);
  });
});
