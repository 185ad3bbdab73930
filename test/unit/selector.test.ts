import { describe, expect, it } from 'vitest';
import { formatSelector, matchesSelector, parseSelector, SelectorError } from '../../control-plane/selector.js';

function errorOf(text: string): SelectorError {
  try {
    parseSelector(text);
  } catch (err) {
    if (err instanceof SelectorError) return err;
    throw err;
  }
  throw new Error(`expected '${text}' to be refused`);
}

describe('parseSelector', () => {
  it('parses every requirement form', () => {
    const sel = parseSelector('site=berlin,tier!=canary,model in (b,a),model notin (c),beta,!alpha,zone==eu');
    expect(sel.requirements).toEqual([
      { key: 'site', operator: 'equals', values: ['berlin'] },
      { key: 'tier', operator: 'not-equals', values: ['canary'] },
      { key: 'model', operator: 'in', values: ['a', 'b'] },
      { key: 'model', operator: 'notin', values: ['c'] },
      { key: 'beta', operator: 'exists', values: [] },
      { key: 'alpha', operator: 'not-exists', values: [] },
      { key: 'zone', operator: 'equals', values: ['eu'] },
    ]);
  });

  it('accepts whitespace, prefixed keys, empty values and deduplicates sets', () => {
    const sel = parseSelector('  example.com/site = berlin ,  model in ( a , a,b ) , tier=  ');
    expect(sel.requirements).toEqual([
      { key: 'example.com/site', operator: 'equals', values: ['berlin'] },
      { key: 'model', operator: 'in', values: ['a', 'b'] },
      { key: 'tier', operator: 'equals', values: [''] },
    ]);
  });

  it('reads a key that starts with an operator word as a key', () => {
    expect(parseSelector('internal,inside=1').requirements.map((r) => [r.key, r.operator])).toEqual([
      ['internal', 'exists'],
      ['inside', 'equals'],
    ]);
  });

  it('treats the empty and the blank selector as matching everything', () => {
    expect(parseSelector('').requirements).toEqual([]);
    expect(parseSelector('   ').requirements).toEqual([]);
    expect(matchesSelector(parseSelector(''), {})).toBe(true);
  });

  it.each([
    ['=berlin', 0, 'a label key'],
    ['site=berlin,', 12, 'a label key'],
    ['site=berlin,,tier=a', 12, 'a label key'],
    ['site berlin', 5, "'=', '==', '!=', 'in', 'notin', ',' or end after the key"],
    ['site=berlin tier=a', 12, "',' or end of selector"],
    ['model in a,b', 9, "'(' opening the value set"],
    ['model in ()', 10, 'at least one value in the set'],
    ['model in (a b)', 12, "',' or ')' in the value set"],
    ['model in (a,', 12, 'a label value'],
    ['model notin (a', 14, "',' or ')' in the value set"],
    ['-site=a', 0, 'a valid label key'],
    ['site=-a', 5, 'a valid label value'],
    [`site=${'v'.repeat(64)}`, 5, 'a valid label value'],
    [`${'k'.repeat(64)}=a`, 0, 'a valid label key'],
    ['Bad_Prefix/site=a', 0, 'a valid label key'],
    ['!', 1, 'a label key'],
    ['site!=a!', 7, "',' or end of selector"],
    ['site=(a)', 5, "',' or end of selector"],
    ['sitein (a)', 7, "'=', '==', '!=', 'in', 'notin', ',' or end after the key"],
  ])('refuses %j at position %i expecting %s', (text, position, expected) => {
    const err = errorOf(text);
    expect(err.position).toBe(position);
    expect(err.expected.startsWith(expected)).toBe(true);
    expect(err.message).toContain(`position ${position}`);
  });
});

describe('matchesSelector', () => {
  const berlin = { site: 'berlin', tier: 'prod', model: 'a' };
  const munich = { site: 'munich', tier: 'canary', model: 'c', beta: '' };
  const bare = {};

  it.each([
    ['site=berlin', [true, false, false]],
    ['site==berlin', [true, false, false]],
    ['tier!=canary', [true, false, true]],
    ['model in (a,b)', [true, false, false]],
    ['model notin (c)', [true, false, true]],
    ['beta', [false, true, false]],
    ['!beta', [true, false, true]],
    ['site=berlin,model in (a)', [true, false, false]],
    ['site in (berlin,munich),!beta', [true, false, false]],
    ['', [true, true, true]],
  ])('%j matches berlin/munich/bare as %j', (text, expected) => {
    const sel = parseSelector(text);
    expect([berlin, munich, bare].map((labels) => matchesSelector(sel, labels))).toEqual(expected);
  });

  it('does not take inherited object properties for labels', () => {
    expect(matchesSelector(parseSelector('constructor'), {})).toBe(false);
    expect(matchesSelector(parseSelector('toString!=x'), {})).toBe(true);
  });
});

describe('formatSelector', () => {
  it('prints a canonical form that parses back to the same selector', () => {
    const text = ' site = berlin,tier!=canary, model in (b,a) ,model notin (c),beta,!alpha,zone==eu';
    const sel = parseSelector(text);
    expect(formatSelector(sel)).toBe('site=berlin,tier!=canary,model in (a,b),model notin (c),beta,!alpha,zone=eu');
    expect(parseSelector(formatSelector(sel))).toEqual(sel);
  });
});
