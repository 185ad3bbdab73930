import { describe, expect, it } from 'vitest';
import { variableNeeds } from '../../manifests/variables.js';
import { assignmentAction } from '../../control-plane/devices/desired.js';
import { sameConfig } from '../../control-plane/devices/device-config.js';
import { parseSelector } from '../../control-plane/selector.js';
import { groupLacking } from '../../control-plane/vars/check.js';
import { effectiveValues, resolveForManifest, type VariableRule } from '../../control-plane/vars/resolve.js';

const sel = (name: string, selector: string, value: string): VariableRule => ({ name, scope: 'selector', target: selector, selector: parseSelector(selector), value });
const fleet = (name: string, value: string): VariableRule => ({ name, scope: 'fleet', target: '', value });
const dev = (name: string, id: string, value: string): VariableRule => ({ name, scope: 'device', target: id, value });

const berlin = { id: 'd1', serial: 'GW-1', labels: { site: 'berlin', tier: 'edge' } };

describe('which value a device gets', () => {
  it('device over selector over fleet', () => {
    const rules = [fleet('A', 'f'), fleet('B', 'f'), fleet('C', 'f'), sel('B', 'site=berlin', 's'), sel('C', 'site=berlin', 's'), dev('C', 'd1', 'd'), dev('C', 'd2', 'other')];
    expect(effectiveValues(rules, berlin)).toEqual({
      values: { A: { value: 'f', source: 'fleet' }, B: { value: 's', source: 'selector site=berlin' }, C: { value: 'd', source: 'device' } },
      conflicts: [],
    });
  });

  it('a selector that does not match, or another device\'s value, gives nothing', () => {
    expect(effectiveValues([sel('A', 'site=paris', 'p'), dev('A', 'd2', 'x')], berlin)).toEqual({ values: {}, conflicts: [] });
  });

  it('two matching selectors that differ are a conflict, not a pick; agreeing ones are not; a device value settles it', () => {
    const rules = [sel('A', 'site=berlin', 'x'), sel('A', 'tier=edge', 'y'), sel('B', 'site=berlin', 'same'), sel('B', 'tier=edge', 'same'), fleet('A', 'f')];
    expect(effectiveValues(rules, berlin)).toEqual({
      values: { B: { value: 'same', source: 'selector site=berlin' } },
      conflicts: [{ name: 'A', candidates: [{ selector: 'site=berlin', value: 'x' }, { selector: 'tier=edge', value: 'y' }] }],
    });
    expect(effectiveValues([...rules, dev('A', 'd1', 'mine')], berlin).values.A).toEqual({ value: 'mine', source: 'device' });
  });
});

describe('resolving a manifest for a device', () => {
  const spec = { services: { web: { environment: { SITE: '${SITE}', BROKER: '${BROKER:-local}', LEVEL: '${LEVEL:?set a log level}' } } } };
  const needs = variableNeeds(spec);

  it('snapshots only the variables the manifest uses', () => {
    const r = resolveForManifest(spec, needs, effectiveValues([fleet('SITE', 'b'), fleet('LEVEL', 'info'), fleet('UNUSED', 'x')], berlin));
    expect(r).toEqual({ vars: { LEVEL: 'info', SITE: 'b' } });
  });

  it('names what is lacking (with the author\'s message) and conflicts only of used variables', () => {
    const r = resolveForManifest(spec, needs, effectiveValues([sel('SITE', 'site=berlin', 'x'), sel('SITE', 'tier=edge', 'y'), sel('UNUSED', 'site=berlin', '1'), sel('UNUSED', 'tier=edge', '2')], berlin));
    expect(r).toEqual({ lack: { lacking: [{ name: 'LEVEL', reason: 'set a log level' }], conflicts: [{ name: 'SITE', candidates: [{ selector: 'site=berlin', value: 'x' }, { selector: 'tier=edge', value: 'y' }] }] } });
  });

  it('groups the devices that lack the same thing, in one message each', () => {
    const devices = [berlin, { id: 'd2', serial: 'GW-2', labels: { site: 'paris' } }, { id: 'd3', serial: 'GW-3', labels: { site: 'paris' } }];
    const groups = groupLacking(spec, needs, [fleet('LEVEL', 'info'), sel('SITE', 'site=berlin', 'b')], devices);
    expect(groups.map((g) => g.message)).toEqual(['2 devices lack SITE (not set and no default): GW-2, GW-3']);
  });
});

describe('whether an assignment is a new document', () => {
  const vars = (v: Record<string, string>) => ({ vars: v });
  it('the same manifest and values only change the campaign; changed values or manifest are a new sequence', () => {
    expect(assignmentAction(undefined, 'm1', null)).toBe('insert');
    expect(assignmentAction({ manifestId: 'm1', config: vars({ A: '1' }) }, 'm1', vars({ A: '1' }))).toBe('campaign-only');
    expect(assignmentAction({ manifestId: 'm1', config: vars({ A: '1' }) }, 'm1', vars({ A: '2' }))).toBe('new-sequence');
    expect(assignmentAction({ manifestId: 'm1', config: null }, 'm2', null)).toBe('new-sequence');
  });

  it('compares secrets by version, not by their (re-randomized) JWE', () => {
    expect(sameConfig({ secrets: { db: { ref: 'v1', jwe: 'a' } } }, { secrets: { db: { ref: 'v1', jwe: 'b' } } })).toBe(true);
    expect(sameConfig({ secrets: { db: { ref: 'v1', jwe: 'a' } } }, { secrets: { db: { ref: 'v2', jwe: 'a' } } })).toBe(false);
    expect(sameConfig(null, { vars: {} })).toBe(true);
  });
});
