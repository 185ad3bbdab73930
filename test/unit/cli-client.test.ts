import { describe, expect, it } from 'vitest';
import { computeDrift, isoTime, toCampaign, toTwin } from '../../cli/client.js';
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

describe('twin drift', () => {
  const desired = { manifest: 'demo@2', digest: null, sequence: 4, campaign: null, issuedAt: null, services: { web: `r/web@${D2}`, db: `r/db@${D1}` } };
  const svc = (image: string, status = 'running', health = 'healthy') => ({ image, imageId: null, containerId: 'c', status, health, restarts: 0, exitCode: null, lastError: null });
  const device = { serial: 'gw-1', id: 'd1', status: 'enrolled', labels: {}, enrolledAt: null, lastSeenAt: null, online: true, desired: 'demo@2', running: 'demo@1', phase: 'running' };
  const reported = (running: string, services: Record<string, ReturnType<typeof svc>>) => ({
    sequence: 9, desiredSequence: 4, running, phase: 'running', bytes: { done: 0, total: 0 }, services, error: null, at: null, receivedAt: null,
  });
  it('is empty when the device runs exactly what is desired, healthy', () => {
    expect(computeDrift({ device, desired, reported: reported('demo@2', { web: svc(`r/web@${D2}`), db: svc(`r/db@${D1}`) }) })).toEqual([]);
  });
  it('names the release, each differing service, missing and unexpected ones', () => {
    const drift = computeDrift({ device, desired, reported: reported('demo@1', { web: svc(`r/web@${D1}`), cache: svc('r/cache@' + D1) }) });
    expect(drift).toEqual([
      { service: null, what: 'release', desired: 'demo@2', reported: 'demo@1' },
      { service: 'web', what: 'image', desired: `r/web@${D2}`, reported: `r/web@${D1}` },
      { service: 'db', what: 'missing', desired: `r/db@${D1}`, reported: null },
      { service: 'cache', what: 'unexpected', desired: null, reported: `r/cache@${D1}` },
    ]);
  });
  it('flags stopped and unhealthy services', () => {
    const drift = computeDrift({ device, desired, reported: reported('demo@2', { web: svc(`r/web@${D2}`, 'exited', 'none'), db: svc(`r/db@${D1}`, 'running', 'unhealthy') }) });
    expect(drift.map((d) => `${d.service}:${d.what}`)).toEqual(['web:status', 'db:health']);
  });
  it('says so when the device has not reported yet, and nothing when nothing is desired', () => {
    expect(computeDrift({ device, desired, reported: null })).toEqual([{ service: null, what: 'no report yet', desired: 'demo@2', reported: null }]);
    expect(computeDrift({ device, desired: null, reported: null })).toEqual([]);
  });
  it('maps a server twin with epoch-ms times and computes drift when the server sends none', () => {
    const twin = toTwin({
      device: { serial: 'gw-1', status: 'enrolled', labels: { site: 'b' }, lastSeenAt: 0 },
      desired: { manifest: { name: 'demo', version: '2', digest: D2 }, sequence: 4, spec: { services: { web: { image: `r/web@${D2}` } } } },
      reported: { running: 'demo@2', phase: 'running', bytes: { done: 5, total: 10 }, services: { web: { image: `r/web@${D2}`, status: 'running', health: 'healthy', restarts: 0 } } },
    });
    expect(twin.device.lastSeenAt).toBe('1970-01-01T00:00:00.000Z');
    expect(twin.desired).toMatchObject({ manifest: 'demo@2', digest: D2, sequence: 4, services: { web: `r/web@${D2}` } });
    expect(twin.reported?.bytes).toEqual({ done: 5, total: 10 });
    expect(twin.inSync).toBe(true);
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
