import { describe, expect, it } from 'vitest';
import type { Manifest, Service } from '../../manifests/model.js';
import { plan, startOrder, PlanError, type Observed, type ObservedContainer, type Step } from '../../edge-daemon/reconcile/planner.js';
import { LABEL, configHash, containerName, volumeName, type Release } from '../../edge-daemon/reconcile/spec.js';

const DEV = 'dev-1';
const img = (n: number) => `registry.example.com/app@sha256:${String(n).repeat(64).slice(0, 64)}`;

function svc(over: Partial<Service> = {}): Service {
  return { image: img(1), environment: {}, networkMode: 'none', restart: 'always', volumes: [], dependsOn: {}, labels: {}, ...over };
}

function release(sequence: number, services: Record<string, Service>, over: Partial<Manifest> = {}): Release {
  const spec: Manifest = { name: 'site', version: `1.${sequence}`, services, volumes: {}, update: { strategy: 'download-then-swap', healthTimeoutMs: 30_000 }, ...over };
  return { sequence, name: spec.name, version: spec.version, digest: 'sha256:' + 'a'.repeat(64), spec };
}

/** What the engine would hold if `r` had been applied by device `device`. */
function running(r: Release, device = DEV, state: ObservedContainer['state'] = 'running'): ObservedContainer[] {
  return Object.entries(r.spec.services).map(([name, s]) => ({
    id: `${device}-${name}-${configHash(s).slice(7, 19)}`,
    name: containerName(device, name, configHash(s)),
    state,
    labels: { [LABEL.device]: device, [LABEL.service]: name, [LABEL.configHash]: configHash(s), [LABEL.release]: `${r.name}@${r.version}` },
  }));
}

function observed(containers: ObservedContainer[], r?: Release): Observed {
  const images = r ? Object.values(r.spec.services).map((s) => s.image.split('@')[1]) : [];
  const volumes = r ? Object.keys(r.spec.volumes).map((v) => ({ name: volumeName(DEV, v), labels: { [LABEL.device]: DEV } })) : [];
  return { containers, images, volumes };
}

const kinds = (steps: Step[]) => steps.map((s) => s.kind);
const indexOf = (steps: Step[], pred: (s: Step) => boolean) => steps.findIndex(pred);

describe('planner', () => {
  const v1 = release(1, { web: svc({ image: img(1) }), worker: svc({ image: img(2), command: ['sleep', '100'] }) }, { volumes: { data: {} } });

  it('first install: fetch, volume, create and start every service, gate on health, commit', () => {
    const steps = plan({ mode: 'apply', desired: v1 }, observed([]), { deviceId: DEV });
    expect(kinds(steps)).toEqual(['ensure-images', 'create-volume', 'create', 'create', 'start', 'start', 'wait-healthy', 'commit', 'prune-images']);
    expect(steps[0]).toEqual({ kind: 'ensure-images', images: [img(1), img(2)], missing: [img(1), img(2)].map((i) => i.split('@')[1]) .map((d) => `registry.example.com/app@${d}`) });
    expect(steps[1]).toMatchObject({ kind: 'create-volume', name: volumeName(DEV, 'data') });
    const gate = steps.find((s) => s.kind === 'wait-healthy');
    expect(gate).toMatchObject({ timeoutMs: 30_000, targets: [{ service: 'web' }, { service: 'worker' }] });
    expect(steps.find((s) => s.kind === 'commit')).toEqual({ kind: 'commit', sequence: 1, release: 'site@1.1' });
  });

  it('no-op: the committed release already running plans nothing', () => {
    expect(plan({ mode: 'apply', desired: v1, committedSequence: 1 }, observed(running(v1), v1), { deviceId: DEV })).toEqual([]);
    expect(plan({ mode: 'restore', current: v1 }, observed(running(v1), v1), { deviceId: DEV })).toEqual([]);
  });

  it('same content under a higher sequence only commits', () => {
    const v2 = { ...v1, sequence: 2 };
    expect(plan({ mode: 'apply', desired: v2, committedSequence: 1 }, observed(running(v1), v1), { deviceId: DEV })).toEqual([{ kind: 'commit', sequence: 2, release: 'site@1.1' }]);
  });

  it('one service changed: only it is fetched, recreated and gated; the other is untouched', () => {
    const v2 = release(2, { web: svc({ image: img(3) }), worker: v1.spec.services.worker }, { volumes: { data: {} } });
    const old = running(v1);
    const steps = plan({ mode: 'apply', desired: v2, committedSequence: 1 }, observed(old, v1), { deviceId: DEV });
    expect(kinds(steps)).toEqual(['ensure-images', 'create', 'stop', 'start', 'wait-healthy', 'commit', 'remove', 'prune-images']);
    const webOld = old.find((c) => c.labels[LABEL.service] === 'web')!;
    const workerOld = old.find((c) => c.labels[LABEL.service] === 'worker')!;
    expect(steps.filter((s) => 'container' in s && s.container === workerOld.id)).toEqual([]);
    expect(steps.find((s) => s.kind === 'stop')).toMatchObject({ container: webOld.id });
    expect(steps.find((s) => s.kind === 'remove')).toMatchObject({ container: webOld.id });
    expect(steps.find((s) => s.kind === 'ensure-images')).toMatchObject({ images: [img(3)] });
    expect(steps.find((s) => s.kind === 'prune-images')).toEqual({ kind: 'prune-images', keep: [img(2), img(3)].sort() });
  });

  it('config-only change (environment) recreates that service from the image already present', () => {
    const v2 = release(2, { web: svc({ image: img(1), environment: { MODE: 'b' } }), worker: v1.spec.services.worker }, { volumes: { data: {} } });
    const steps = plan({ mode: 'apply', desired: v2, committedSequence: 1 }, observed(running(v1), v1), { deviceId: DEV });
    expect(steps.find((s) => s.kind === 'ensure-images')).toEqual({ kind: 'ensure-images', images: [img(1)], missing: [] });
    const create = steps.find((s) => s.kind === 'create');
    expect(create).toMatchObject({ service: 'web', name: containerName(DEV, 'web', configHash(v2.spec.services.web)) });
    expect(configHash(v2.spec.services.web)).not.toBe(configHash(v1.spec.services.web));
  });

  it('changing only depends_on recreates nothing', () => {
    const v2 = release(2, { web: svc({ image: img(1), dependsOn: { worker: { condition: 'service_started' } } }), worker: v1.spec.services.worker }, { volumes: { data: {} } });
    expect(kinds(plan({ mode: 'apply', desired: v2, committedSequence: 1 }, observed(running(v1), v1), { deviceId: DEV }))).toEqual(['commit']);
  });

  it('download-then-swap: every image is ensured before any old container stops', () => {
    const v2 = release(2, { web: svc({ image: img(3) }), worker: svc({ image: img(4) }) });
    const steps = plan({ mode: 'apply', desired: v2, committedSequence: 1 }, observed(running(v1), v1), { deviceId: DEV });
    const ensure = indexOf(steps, (s) => s.kind === 'ensure-images');
    const firstStop = indexOf(steps, (s) => s.kind === 'stop');
    expect(ensure).toBeGreaterThanOrEqual(0);
    expect(firstStop).toBeGreaterThan(ensure);
    expect(steps[ensure]).toMatchObject({ images: [img(3), img(4)] });
    // old containers are removed only after the commit: they are the rollback path
    const commit = indexOf(steps, (s) => s.kind === 'commit');
    for (const [i, s] of steps.entries()) if (s.kind === 'remove') expect(i).toBeGreaterThan(commit);
  });

  it('stop-then-start: old containers stop before the download, images of the old release are kept', () => {
    const v2 = release(2, { web: svc({ image: img(3) }), worker: svc({ image: img(4) }) }, { update: { strategy: 'stop-then-start', healthTimeoutMs: 10_000 } });
    const steps = plan({ mode: 'apply', desired: v2, committedSequence: 1 }, observed(running(v1), v1), { deviceId: DEV, keepImages: [img(1), img(2)] });
    expect(kinds(steps).slice(0, 3)).toEqual(['stop', 'stop', 'ensure-images']);
    expect(steps.find((s) => s.kind === 'prune-images')).toEqual({ kind: 'prune-images', keep: [img(1), img(2), img(3), img(4)] });
    // the option overrides the manifest's strategy
    const swapped = plan({ mode: 'apply', desired: v2 }, observed(running(v1), v1), { deviceId: DEV, strategy: 'download-then-swap' });
    expect(swapped[0].kind).toBe('ensure-images');
  });

  it('depends_on service_healthy: the dependency is proven healthy before the dependent starts', () => {
    const r = release(1, {
      app: svc({ image: img(2), dependsOn: { db: { condition: 'service_healthy' }, cache: { condition: 'service_started' } } }),
      db: svc({ image: img(1) }),
      cache: svc({ image: img(3) }),
    });
    const steps = plan({ mode: 'apply', desired: r }, observed([]), { deviceId: DEV });
    const startOf = (s: string) => indexOf(steps, (x) => x.kind === 'start' && x.service === s);
    const waitDb = indexOf(steps, (x) => x.kind === 'wait-healthy' && x.targets.some((t) => t.service === 'db'));
    expect(startOf('db')).toBeLessThan(waitDb);
    expect(waitDb).toBeLessThan(startOf('app'));
    expect(startOf('cache')).toBeLessThan(startOf('app'));
    // the final gate covers the services not yet waited on
    const gates = steps.filter((x) => x.kind === 'wait-healthy');
    expect(gates.at(-1)).toMatchObject({ targets: [{ service: 'cache' }, { service: 'app' }] });
  });

  it('start order puts dependencies first and refuses cycles', () => {
    expect(startOrder({ a: svc({ dependsOn: { b: { condition: 'service_started' } } }), b: svc(), c: svc({ dependsOn: { a: { condition: 'service_started' } } }) })).toEqual(['b', 'a', 'c']);
    expect(() => startOrder({ a: svc({ dependsOn: { b: { condition: 'service_started' } } }), b: svc({ dependsOn: { a: { condition: 'service_started' } } }) })).toThrow(PlanError);
  });

  it('volumes are never removed, even when the release drops them', () => {
    const v2 = release(2, { web: svc({ image: img(3) }) });
    const steps = plan({ mode: 'apply', desired: v2, committedSequence: 1 }, observed(running(v1), v1), { deviceId: DEV });
    expect(steps.some((s) => (s.kind as string).includes('volume') && s.kind !== 'create-volume')).toBe(false);
    expect(steps.some((s) => s.kind === 'create-volume')).toBe(false);
    const emptied = plan({ mode: 'restore', current: null }, observed(running(v1), v1), { deviceId: DEV });
    expect(kinds(emptied)).toEqual(['stop', 'stop', 'remove', 'remove']);
  });

  it('a removed service is stopped before the swap and removed after commit', () => {
    const v2 = release(2, { web: v1.spec.services.web }, { volumes: { data: {} } });
    const steps = plan({ mode: 'apply', desired: v2, committedSequence: 1 }, observed(running(v1), v1), { deviceId: DEV });
    expect(kinds(steps)).toEqual(['stop', 'commit', 'remove']);
  });

  it("another device's containers are never touched", () => {
    const other = running(v1, 'dev-2');
    const steps = plan({ mode: 'apply', desired: v1, committedSequence: 1 }, observed([...running(v1), ...other], v1), { deviceId: DEV });
    expect(steps).toEqual([]);
    const fresh = plan({ mode: 'apply', desired: v1 }, observed(other), { deviceId: DEV });
    const touched = fresh.filter((s) => 'container' in s && other.some((c) => c.id === s.container));
    expect(touched).toEqual([]);
    expect(fresh.filter((s) => s.kind === 'create')).toHaveLength(2);
  });

  it('rollback (restore of the previous release) restarts the kept old containers and removes the new ones', () => {
    const v2 = release(2, { web: svc({ image: img(3) }), worker: v1.spec.services.worker }, { volumes: { data: {} } });
    const oldWeb = running(v1, DEV, 'exited').filter((c) => c.labels[LABEL.service] === 'web');
    const now = [...oldWeb, ...running(v2)];
    const steps = plan({ mode: 'restore', current: v1 }, observed(now, v1), { deviceId: DEV });
    const newWeb = running(v2).find((c) => c.labels[LABEL.service] === 'web')!;
    expect(steps).toEqual([
      { kind: 'stop', service: 'web', container: newWeb.id },
      { kind: 'start', service: 'web', container: oldWeb[0].id },
      { kind: 'wait-healthy', targets: [{ service: 'web', container: oldWeb[0].id }], timeoutMs: 30_000, stableMs: 3000 },
      { kind: 'remove', service: 'web', container: newWeb.id },
    ]);
  });

  it('a restore creates what is missing of the current release and never commits, even when everything changes', () => {
    const steps = plan({ mode: 'restore', current: v1 }, observed([]), { deviceId: DEV });
    expect(kinds(steps)).toEqual(['ensure-images', 'create-volume', 'create', 'create', 'start', 'start', 'wait-healthy']);
    expect(steps.find((s) => s.kind === 'create')).toMatchObject({ release: { name: 'site', version: '1.1', sequence: 1 } });
  });

  it('the input cannot ask for an apply without a release to apply', () => {
    // @ts-expect-error: apply names its release; a missing one is a type error, not a plan without a commit
    const input: Parameters<typeof plan>[0] = { mode: 'apply', desired: null };
    expect(input.mode).toBe('apply');
  });
});
