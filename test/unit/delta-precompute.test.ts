import { describe, expect, it } from 'vitest';
import { deltaRequests } from '../../control-plane/campaigns/delta-precompute.js';
import type { Manifest } from '../../manifests/model.js';

const D = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;

function release(images: Record<string, string>): Manifest {
  return { name: 'app', version: '1', services: Object.fromEntries(Object.entries(images).map(([name, image]) => [name, { image }])) } as unknown as Manifest;
}

describe('deltas a campaign prepares', () => {
  it('asks, per image the update brings, from the images of the running release it replaces', () => {
    const from = release({ web: `registry.example.com/acme/web@${D(1)}`, db: `registry.example.com/acme/db@${D(2)}` });
    const to = release({ web: `registry.example.com/acme/web@${D(3)}`, db: `registry.example.com/acme/db@${D(2)}`, cache: `registry.example.com/acme/cache@${D(4)}` });
    expect(deltaRequests(to, from)).toEqual([
      { target: `registry.example.com/acme/cache@${D(4)}`, have: [`registry.example.com/acme/web@${D(1)}`] },
      { target: `registry.example.com/acme/web@${D(3)}`, have: [`registry.example.com/acme/web@${D(1)}`] },
    ]);
  });

  it('asks nothing when the running release holds every image, or nothing the update replaces', () => {
    const a = release({ web: `registry.example.com/acme/web@${D(1)}` });
    expect(deltaRequests(a, a)).toEqual([]);
    expect(deltaRequests(release({ web: `registry.example.com/acme/web@${D(1)}`, db: `registry.example.com/acme/db@${D(2)}` }), a)).toEqual([]);
  });
});
