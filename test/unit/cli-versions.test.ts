import { describe, expect, it } from 'vitest';
import { byRelease, latestRelease } from '../../cli/versions.js';

const m = (release: string) => ({ name: release.split('@')[0], version: release.split('@')[1] });

describe('release order', () => {
  it('sorts by name, then the highest semantic version first, prereleases below their release', () => {
    const list = ['demo@1.9.0', 'app@1.0.0', 'demo@1.10.0', 'demo@2.0.0-rc.1', 'demo@2.0.0', 'demo@2.0.0-rc.10', 'demo@2.0.0-rc.2'].map(m);
    expect(byRelease(list).map((x) => `${x.name}@${x.version}`)).toEqual(['app@1.0.0', 'demo@2.0.0', 'demo@2.0.0-rc.10', 'demo@2.0.0-rc.2', 'demo@2.0.0-rc.1', 'demo@1.10.0', 'demo@1.9.0']);
  });
  it('finds the latest version of one manifest', () => {
    const list = ['demo@1.9.0', 'demo@1.10.0', 'other@9.0.0', 'demo@01.2.0'].map(m);
    expect(latestRelease(list, 'demo')).toEqual(m('demo@1.10.0'));
    expect(latestRelease(list, 'ghost')).toBeNull();
  });
});
