import { describe, expect, it } from 'vitest';
import { driftOf, isoTime, toCampaign, toTwin } from '../../cli/client.js';
import { parseServerError } from '../../cli/http.js';

const D1 = 'sha256:' + '1'.repeat(64);
const D2 = 'sha256:' + '2'.repeat(64);

describe('server errors', () => {
  it('reads the error envelope, with the field', () => {
    expect(parseServerError(400, 'Bad Request', JSON.stringify({ error: { code: 'invalid', message: 'waves[1]: must grow', field: 'waves' } }))).toEqual({
      status: 400, code: 'invalid', message: 'waves[1]: must grow', field: 'waves',
    });
  });
  it('falls back to the first line of a non-envelope body, then the status text', () => {
    expect(parseServerError(502, 'Bad Gateway', '<html>\nproxy</html>')).toEqual({ status: 502, code: '502', message: '<html>' });
    expect(parseServerError(503, 'Service Unavailable', '')).toMatchObject({ message: 'Service Unavailable' });
  });
});

describe('twin', () => {
  const svc = (drift: string, extra: Record<string, unknown> = {}) => ({ desiredImage: `r/web@${D2}`, reportedImage: `r/web@${D2}`, status: 'running', health: 'healthy', restarts: 0, lastError: null, drift, ...extra });
  const serverTwin = (over: Record<string, unknown>) => ({
    id: 'dev_1', serial: 'gw-1', labels: { site: 'b' }, status: 'enrolled', createdAt: '2026-01-01T00:00:00.000Z', enrolledAt: '2026-01-01T00:01:00.000Z',
    previousRelease: 'demo@1', online: true, lastSeenAt: '2026-01-01T00:02:00.000Z',
    desired: { sequence: 4, release: 'demo@2', campaign: 'cmp_1' },
    reported: { sequence: 9, desiredSequence: 4, running: 'demo@2', phase: 'running', bytesDone: 5, bytesTotal: 10, error: null, at: '2026-01-01T00:02:00.000Z', receivedAt: '2026-01-01T00:02:00.000Z' },
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
      reported: { sequence: 9, desiredSequence: 4, running: 'demo@1', phase: 'rolled-back', bytesDone: 0, bytesTotal: 0, error: 'web unhealthy', at: null, receivedAt: null },
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
  it('keeps waves, counts and failing devices; totals the devices', () => {
    const c = toCampaign({
      id: 'c1', manifest: 'demo@2', selector: 'site=b', state: 'running', createdAt: 1000,
      waves: [{ index: 1, size: 1, state: 'done', counts: { succeeded: 1 } }, { index: 2, size: 2, state: 'active', counts: { updating: 2 } }],
      failing: [{ serial: 'gw-3', state: 'failed', error: 'unhealthy' }],
    });
    expect(c).toMatchObject({ id: 'c1', manifest: 'demo@2', selector: 'site=b', state: 'running', devices: 3, createdAt: isoTime(1000) });
    expect(c.waves[1]).toEqual({ index: 2, size: 2, state: 'active', counts: { updating: 2 } });
    expect(c.failing).toEqual([{ serial: 'gw-3', state: 'failed', error: 'unhealthy' }]);
  });
});
