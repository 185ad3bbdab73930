import { describe, expect, it } from 'vitest';
import { DiskSpaceError, namingImage } from '../../edge-daemon/download/errors.js';
import { decideLayers, deviceComponent, diskChecks, enginePrefix, layersToFetch, localTag, tagsToRemove } from '../../edge-daemon/download/plan.js';

const d = (c: string): string => `sha256:${c.repeat(64)}`;

describe('enginePrefix: layers the engine has as a chain', () => {
  it('counts the longest common prefix with any engine image', () => {
    expect(enginePrefix(['a', 'b', 'c'], [['a', 'x'], ['a', 'b', 'q', 'r']])).toBe(2);
  });
  it('does not count a diff_id that sits at another height in the engine', () => {
    expect(enginePrefix(['a', 'b'], [['b', 'a'], ['x', 'b']])).toBe(0);
  });
  it('is capped by the image itself when an engine chain is longer', () => {
    expect(enginePrefix(['a'], [['a', 'b', 'c']])).toBe(1);
  });
  it('is zero for an empty engine', () => {
    expect(enginePrefix(['a', 'b'], [])).toBe(0);
  });
});

describe('decideLayers / layersToFetch', () => {
  const layers = [
    { digest: d('1'), size: 10 },
    { digest: d('2'), size: 20 },
    { digest: d('3'), size: 30 },
  ];
  it('fetches only layers neither the engine (in chain) nor the store has', () => {
    const decisions = decideLayers(layers, ['x', 'y', 'z'], [['x']], (digest) => digest === d('3'));
    expect(decisions.map((l) => [l.inEngine, l.inStore])).toEqual([
      [true, false],
      [false, false],
      [false, true],
    ]);
    expect(layersToFetch(decisions).map((l) => l.digest)).toEqual([d('2')]);
  });
  it('refuses a config whose diff_ids do not match the layers', () => {
    expect(() => decideLayers(layers, ['x'], [], () => false)).toThrow(/1 rootfs.diff_ids for 3 layers/);
  });
});

describe('diskChecks', () => {
  it('asks the state dir for the missing bytes plus margin when the engine root is unknown', () => {
    expect(diskChecks({ missingBytes: 100, marginBytes: 7, stateDir: { path: '/s', dev: 1 } })).toEqual([
      { where: 'state dir /s', path: '/s', needed: 107 },
    ]);
  });
  it('counts our copy and the engine copy on one filesystem', () => {
    const checks = diskChecks({ missingBytes: 100, marginBytes: 7, stateDir: { path: '/s', dev: 1 }, engineRoot: { path: '/e', dev: 1 } });
    expect(checks.map((c) => c.needed)).toEqual([207]);
  });
  it('checks both filesystems when they differ', () => {
    const checks = diskChecks({ missingBytes: 100, marginBytes: 7, stateDir: { path: '/s', dev: 1 }, engineRoot: { path: '/e', dev: 2 } });
    expect(checks.map((c) => [c.path, c.needed])).toEqual([
      ['/s', 107],
      ['/e', 107],
    ]);
  });
});

describe('local tags', () => {
  it('names an image per device and pinned manifest', () => {
    const t = localTag('GW-0042_a', 'app/web', d('f'));
    expect(t.ref).toBe(`berth.local/gw-0042-a/app/web:sha256-${'f'.repeat(16)}`);
  });
  it('rejects a device id with nothing usable', () => {
    expect(() => deviceComponent('__')).toThrow(/device id/);
  });
  it('untags only this device’s tags that no kept image needs', () => {
    const keep = localTag('dev1', 'app', d('a')).ref;
    const old = localTag('dev1', 'app', d('b')).ref;
    const other = localTag('dev10', 'app', d('b')).ref;
    expect(tagsToRemove([keep, old, other, 'registry.example.com/app:1'], 'dev1', [keep])).toEqual([old]);
  });
});

describe('namingImage', () => {
  it('prefixes the image to an error that does not name it, keeping the cause', () => {
    const cause = new Error('ENOSPC: no space left on device, write');
    const named = namingImage('registry.example.com/app@sha256:ab', cause) as Error;
    expect(named.message).toBe('image registry.example.com/app@sha256:ab: ENOSPC: no space left on device, write');
    expect(named.cause).toBe(cause);
    const typed = new DiskSpaceError(10, 5, 'state dir /s');
    expect(namingImage('x', typed)).toBe(typed);
  });
});
