import { describe, expect, it } from 'vitest';
import type { Service } from '../../manifests/model.js';
import { LABEL, configHash, containerCreateOptions, containerName, nameSafe, volumeName } from '../../edge-daemon/reconcile/spec.js';

const base: Service = {
  image: 'registry.example.com/web@sha256:' + 'b'.repeat(64),
  command: ['httpd', '-f'],
  entrypoint: ['/bin/sh', '-c'],
  environment: { A: '1', B: 'two words' },
  networkMode: 'host',
  restart: 'on-failure',
  volumes: [{ source: 'data', target: '/data', readOnly: false }],
  healthcheck: { test: ['CMD', 'true'], intervalMs: 1000, timeoutMs: 500, retries: 3, startPeriodMs: 2000 },
  dependsOn: {},
  memoryBytes: 64 * 1024 * 1024,
  nanoCpus: 500_000_000,
  user: '1000:1000',
  workingDir: '/srv',
  labels: { team: 'ops' },
  stopGracePeriodMs: 2500,
};

describe('container spec', () => {
  it('maps the normalized service onto the engine create options', () => {
    const o = containerCreateOptions('dev/1', { name: 'site', version: '2', sequence: 7 }, 'web', base, 'sha256:' + 'c'.repeat(64));
    const hash = configHash(base);
    expect(o.name).toBe(containerName('dev/1', 'web', hash));
    expect(o.name).toMatch(/^berth-dev-1-web-[0-9a-f]{12}$/);
    expect(o.Image).toBe('sha256:' + 'c'.repeat(64));
    expect(o.Env).toEqual(['A=1', 'B=two words']);
    expect(o.Cmd).toEqual(['httpd', '-f']);
    expect(o.Entrypoint).toEqual(['/bin/sh', '-c']);
    expect(o.Healthcheck).toEqual({ Test: ['CMD', 'true'], Interval: 1e9, Timeout: 5e8, Retries: 3, StartPeriod: 2e9 });
    expect(o.StopTimeout).toBe(3);
    expect(o.Labels).toEqual({ team: 'ops', [LABEL.device]: 'dev/1', [LABEL.release]: 'site@2', [LABEL.sequence]: '7', [LABEL.service]: 'web', [LABEL.configHash]: hash, [LABEL.image]: base.image });
    expect(o.HostConfig).toMatchObject({ NetworkMode: 'host', RestartPolicy: { Name: 'on-failure' }, Memory: 67108864, NanoCpus: 500_000_000, Init: true });
    expect(o.HostConfig?.Mounts).toEqual([{ Type: 'volume', Source: volumeName('dev/1', 'data'), Target: '/data', ReadOnly: false }]);
  });

  it('the config hash follows content, not key order, and ignores depends_on', () => {
    const reordered = Object.fromEntries(Object.entries(base).reverse()) as unknown as Service;
    expect(Object.keys(reordered)[0]).toBe('stopGracePeriodMs');
    expect(configHash(reordered)).toBe(configHash(base));
    expect(configHash({ ...base, dependsOn: { db: { condition: 'service_healthy' } } })).toBe(configHash(base));
    expect(configHash({ ...base, environment: { A: '2', B: 'two words' } })).not.toBe(configHash(base));
    expect(configHash({ ...base, image: base.image.replace(/b/g, 'd') })).not.toBe(configHash(base));
  });

  it('names stay valid Docker names whatever the device id', () => {
    expect(nameSafe('_weird id')).toBe('x_weird-id');
    expect(volumeName('a:b', 'data')).toBe('berth-a-b-data');
  });
});
