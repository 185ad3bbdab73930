import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { namesOf, reshape } from '../../cli/output.js';

describe('-o name and -o yaml, made from a verb\'s JSON', () => {
  it('names devices by serial, manifests by name@version, the rest by id', () => {
    expect(namesOf([{ serial: 'gw-a', id: 'dev_1' }, { serial: 'gw-b', id: 'dev_2' }])).toEqual(['gw-a', 'gw-b']);
    expect(namesOf({ name: 'demo', version: '1.0.0', digest: 'sha256:x' })).toEqual(['demo@1.0.0']);
    expect(namesOf([{ id: 'cmp_1', name: 'rollout' }])).toEqual(['cmp_1']);
    expect(namesOf({ device: { serial: 'gw-a' }, drift: ['app: image differs'] })).toEqual(['gw-a']);
    // devices history: a report names the release it ran; one that ran nothing has no name (no line).
    const report = { sequence: 7, desiredSequence: 3, phase: 'running', bytes: { done: 0, total: 0 }, services: {}, at: 'x', receivedAt: 'x' };
    expect(namesOf([{ ...report, running: 'demo@1.0.0' }, { ...report, running: null, phase: 'downloading' }, { ...report, running: 'demo@1.1.0' }])).toEqual(['demo@1.0.0', 'demo@1.1.0']);
    expect(namesOf({ errorCount: 1, errors: [{ line: 3, message: 'x' }], error: { code: 'c' } })).toEqual([]);
  });
  it('reshapes JSON text and lets other text pass', () => {
    const json = JSON.stringify([{ serial: 'gw-a', labels: { site: 'berlin' } }], null, 2);
    expect(parse(reshape(json, 'yaml'))).toEqual([{ serial: 'gw-a', labels: { site: 'berlin' } }]);
    expect(reshape(json, 'name')).toBe('gw-a');
    expect(reshape('not json', 'yaml')).toBe('not json');
  });
});
