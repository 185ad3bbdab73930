import { describe, expect, it } from 'vitest';
import type { Manifest } from '../../manifests/model.js';
import type { ServiceReport } from '../../protocol/device.js';
import { computeTwin, type TwinInput } from '../../control-plane/devices/twin.js';
import { diffManifests } from '../../control-plane/manifests/diff.js';

const D1 = 'sha256:' + '1'.repeat(64);
const D2 = 'sha256:' + '2'.repeat(64);

function manifest(version: string, services: Record<string, Partial<Manifest['services'][string]>>): Manifest {
  return {
    name: 'app',
    version,
    volumes: {},
    update: { strategy: 'download-then-swap', healthTimeoutMs: 60_000 },
    services: Object.fromEntries(
      Object.entries(services).map(([k, s]) => [k, { image: `registry.example.com/app@${D1}`, environment: {}, networkMode: 'host', restart: 'always', volumes: [], dependsOn: {}, labels: {}, ...s }]),
    ) as Manifest['services'],
  };
}

const svc = (image: string, extra: Partial<ServiceReport> = {}): ServiceReport => ({ image, status: 'running', health: 'healthy', restarts: 0, ...extra });

function input(services: Record<string, ServiceReport>, over: Partial<TwinInput> = {}): TwinInput {
  return {
    desired: { sequence: 3, name: 'app', version: '1', spec: manifest('1', { web: {}, db: { image: `registry.example.com/db@${D2}` } }), campaignId: null },
    reported: { sequence: 9, desiredSequence: 3, running: 'app@1', phase: 'running', bytes: { done: 1, total: 1 }, services, error: null, at: '2026-01-01T00:00:00Z', receivedAt: 1_000 },
    lastSeenAt: 1_000,
    now: 61_000,
    offlineAfterMs: 120_000,
    ...over,
  };
}

describe('twin', () => {
  it('is in sync when every desired service runs its pinned image', () => {
    const t = computeTwin(input({ web: svc(`registry.example.com/app@${D1}`), db: svc(`registry.example.com/db@${D2}`, { health: 'none' }) }));
    expect(t.inSync).toBe(true);
    expect(t.online).toBe(true);
    expect(Object.values(t.services).map((s) => s.drift)).toEqual(['in-sync', 'in-sync']);
  });

  it('names the drift of each service', () => {
    const t = computeTwin(
      input({ web: svc(`registry.example.com/app@${D2}`), db: svc(`registry.example.com/db@${D2}`, { status: 'exited', lastError: 'exit 1' }), extra: svc('x@' + D1) }),
    );
    expect(t.inSync).toBe(false);
    expect(t.services.web.drift).toBe('image-differs');
    expect(t.services.db).toMatchObject({ drift: 'not-running', lastError: 'exit 1' });
    expect(t.services.extra.drift).toBe('unexpected');
    expect(computeTwin(input({ web: svc(`registry.example.com/app@${D1}`, { health: 'unhealthy' }) })).services).toMatchObject({ web: { drift: 'unhealthy' }, db: { drift: 'missing' } });
  });

  it('is not in sync while the report refers to an older document, and offline after the limit', () => {
    const base = input({ web: svc(`registry.example.com/app@${D1}`), db: svc(`registry.example.com/db@${D2}`) });
    const older = computeTwin({ ...base, reported: { ...(base.reported as NonNullable<TwinInput['reported']>), desiredSequence: 2 } });
    expect(older.inSync).toBe(false);
    expect(computeTwin({ ...base, now: 1_000 + 120_001 }).online).toBe(false);
    expect(computeTwin({ ...base, lastSeenAt: null, reported: null }).reported).toBeNull();
  });
});

describe('manifest diff', () => {
  it('lists added, removed and changed services with the fields that changed', () => {
    const a = manifest('1', { web: { environment: { A: '1' } }, old: {} });
    const b = manifest('2', { web: { image: `registry.example.com/app@${D2}`, environment: { A: '2' } }, fresh: {} });
    const d = diffManifests(a, b);
    expect(d.from).toBe('app@1');
    expect(d.services).toEqual([
      { service: 'fresh', change: 'added', image: { from: null, to: `registry.example.com/app@${D1}` }, fields: [] },
      { service: 'old', change: 'removed', image: { from: `registry.example.com/app@${D1}`, to: null }, fields: [] },
      { service: 'web', change: 'changed', image: { from: `registry.example.com/app@${D1}`, to: `registry.example.com/app@${D2}` }, fields: [{ field: 'environment', from: { A: '1' }, to: { A: '2' } }] },
    ]);
    expect(diffManifests(a, a).services).toEqual([]);
  });
});
