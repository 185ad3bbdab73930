import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import type { ResolvedImage } from '../../registry-proxy/delta/images.js';
import { DeltaJobs } from '../../registry-proxy/delta/jobs.js';
import { candidatesOf, deltaUrl, mostOverlap, sameSpot } from '../../registry-proxy/delta/plan.js';

const d = (c: string): string => 'sha256:' + c.repeat(64).slice(0, 64);

function img(name: string, tag: string, diffIds: string[]): ResolvedImage {
  return {
    name,
    ref: `${name}@${d(tag)}`,
    manifest: d(tag),
    config: d('c'),
    layers: diffIds.map((diffId, index) => ({ index, digest: d(String(index)), size: 100, mediaType: 'x', diffId })),
  };
}

describe('delta base choice', () => {
  const target = img('rig/app', 'a', [d('1'), d('2')]);
  const oldApp = img('rig/app', 'b', [d('1'), d('3')]);
  const tools = img('rig/tools', 'e', [d('4'), d('3')]);

  it('takes the layer at the same position of a held image of the same repository first', () => {
    expect(sameSpot(target, 1, [tools, oldApp])).toEqual({ image: oldApp, layer: oldApp.layers[1] });
    expect(sameSpot(target, 1, [tools])).toBeUndefined();
    expect(sameSpot(target, 2, [oldApp])).toBeUndefined();
  });

  it('otherwise the held layer with the most shared paths, none when nothing is shared', () => {
    const cands = candidatesOf([oldApp, tools]);
    expect(cands.map((c) => c.layer.diffId)).toEqual([d('1'), d('3'), d('4')]);
    const paths = [new Set(['etc/a']), new Set(['app/x', 'app/y']), new Set(['app/x'])];
    const withPaths = cands.map((c, i) => ({ c, paths: paths[i] }));
    expect(mostOverlap(new Set(['app/x', 'app/y', 'app/z']), withPaths)?.layer.diffId).toBe(d('3'));
    expect(mostOverlap(new Set(['nothing/shared']), withPaths)).toBeUndefined();
  });

  it('names both images in the delta URL, escaped', () => {
    expect(deltaUrl(d('f'), target, oldApp)).toBe(`/berth/v1/deltas/${d('f')}?target=rig%2Fapp%40sha256%3A${'a'.repeat(64)}&base=rig%2Fapp%40sha256%3A${'b'.repeat(64)}`);
  });
});

describe('delta jobs', () => {
  it('runs one job per key for every caller, one job at a time, and forgets the key once done', async () => {
    const jobs = new DeltaJobs(createLogger('test', { level: 'silent' }));
    let running = 0;
    let most = 0;
    let calls = 0;
    const work = async (): Promise<number> => {
      calls++;
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 20));
      running--;
      return calls;
    };
    const same = await Promise.all([jobs.run('pair-1', work), jobs.run('pair-1', work), jobs.run('pair-2', work)]);
    expect(same).toEqual([1, 1, 2]);
    expect(most).toBe(1);
    expect(jobs.has('pair-1')).toBe(false);
    await expect(jobs.run('pair-3', async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(await jobs.run('pair-1', work)).toBe(3);
  });
});
