import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  digestSchema,
  durationMsSchema,
  formatDuration,
  formatReleaseRef,
  formatShare,
  formatSize,
  formatWave,
  GrammarError,
  isLabelKey,
  isLabelValue,
  labelsSchema,
  parseDigest,
  parseDuration,
  parsePercent,
  parseReleaseRef,
  parseSize,
  parseWaves,
  releaseRefSchema,
  sizeBytesSchema,
} from '../../common/grammar.js';

function refusal(fn: () => unknown): GrammarError {
  try {
    fn();
  } catch (err) {
    if (err instanceof GrammarError) return err;
    throw err;
  }
  throw new Error('expected a GrammarError');
}

describe('durations', () => {
  it.each([
    ['0', 0],
    ['0s', 0],
    ['250ms', 250],
    ['2h1m1s10ms', 7_261_010],
    ['90s', 90_000],
    ['10m', 600_000],
    ['1h30m', 5_400_000],
    ['1.5h', 5_400_000],
    ['1m30s', 90_000],
    ['1.5s', 1500],
    ['2d', 172_800_000],
    ['1w', 604_800_000],
    ['1w2d3h4m5s6ms', 604_800_000 + 172_800_000 + 10_800_000 + 240_000 + 5000 + 6],
    [' 5m ', 300_000],
    ['0.4ms', 0],
  ])('%j → %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each([
    ['', undefined],
    ['fast', undefined],
    ['10', 'a number needs a unit (10s? 10m?)'],
    ['1.5', 'a number needs a unit (1.5s? 1.5m?)'],
    ['s', undefined],
    ['-5s', undefined],
    ['1 s', 'the units are'],
    ['5S', 'the units are'],
    ['1m30', 'the units are'],
    ['30s1m', 'largest first'],
    ['1m1m', 'largest first'],
    ['10 minutes', 'the units are'],
    ['9999999999999999w', 'too long'],
  ])('refuses %j, saying why', (text, why) => {
    const err = refusal(() => parseDuration(text, '--soak'));
    expect(err.message).toMatch(/^--soak: expected a duration like 30s, 1m30s or 500ms, got "/);
    expect(err.label).toBe('--soak');
    if (why) expect(err.detail).toContain(why);
    else expect(err.detail).not.toContain('": ');
  });

  it('formats the shortest compound form, which parses back to the same value', () => {
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(5_400_000)).toBe('1h30m');
    expect(formatDuration(1500)).toBe('1s500ms');
    expect(formatDuration(14 * 86_400_000)).toBe('14d');
    for (const ms of [0, 1, 999, 1000, 61_000, 5_400_000, 86_400_001, 30 * 86_400_000]) expect(parseDuration(formatDuration(ms))).toBe(ms);
  });
});

describe('sizes', () => {
  it.each([
    ['128M', 128 * 1024 ** 2],
    ['1g', 1024 ** 3],
    ['512k', 512 * 1024],
    ['64mb', 64 * 1024 ** 2],
    ['2b', 2],
    ['2048', 2048],
    ['1.5g', 1.5 * 1024 ** 3],
    ['1T', 1024 ** 4],
    [4096, 4096],
  ] as const)('%j → %d bytes', (value, bytes) => expect(parseSize(value)).toBe(bytes));

  it.each([
    ['lots', undefined],
    ['12Q', 'unknown unit "q"'],
    ['', undefined],
    ['-1m', undefined],
    ['0', 'at least 1 byte'],
    [0, 'above 0'],
    [1.5, 'whole number'],
    [-3, 'above 0'],
    ['99999999999t', 'too large'],
  ] as const)('refuses %j', (value, why) => {
    const err = refusal(() => parseSize(value, '--cache-max-bytes'));
    expect(err.message).toMatch(/^--cache-max-bytes: expected a size like 128M, 1g, 512k or a number of bytes, got /);
    if (why) expect(err.detail).toContain(why);
  });

  it('formats in the largest exact unit', () => {
    expect(formatSize(128 * 1024 ** 2)).toBe('128M');
    expect(formatSize(1536 * 1024)).toBe('1536K');
    expect(formatSize(100)).toBe('100');
    for (const b of [1, 1024, 1536 * 1024, 3 * 1024 ** 4]) expect(parseSize(formatSize(b))).toBe(b);
  });
});

describe('percentages', () => {
  it.each([
    ['95%', 95],
    ['95', 95],
    ['12.5%', 12.5],
    ['0', 0],
    ['100%', 100],
    [' 0.5% ', 0.5],
  ])('%j → %d', (text, p) => expect(parsePercent(text)).toBe(p));

  it.each(['101%', '-1', 'half', '', '95 %', '%', '1e2'])('refuses %j', (text) => {
    expect(refusal(() => parsePercent(text, '--success')).message).toMatch(/^--success: expected a percentage like 95% or 12.5%, got /);
  });

  it('prints shares without float noise', () => {
    expect(formatShare(0.125)).toBe('12.5%');
    expect(formatShare(0.07)).toBe('7%');
    expect(formatShare(1)).toBe('100%');
  });
});

describe('waves', () => {
  it('reads a comma-separated flag and an API list the same way, 12.5% included', () => {
    const want = [{ kind: 'count', count: 1 }, { kind: 'percent', percent: 12.5 }, { kind: 'percent', percent: 100 }];
    expect(parseWaves('1,12.5%,100%')).toEqual(want);
    expect(parseWaves(['1', '12.5%', '100%'])).toEqual(want);
    expect(parseWaves(' 2 , 50% ,100%').map(formatWave)).toEqual(['2', '50%', '100%']);
    // Mixed kinds depend on the fleet size, so they are not compared.
    expect(parseWaves('50,10%,100%').map(formatWave)).toEqual(['50', '10%', '100%']);
    expect(parseWaves('0.5%,100%')[0]).toEqual({ kind: 'percent', percent: 0.5 });
  });

  it.each([
    ['1,,100%', 1, 'wave 2: expected a device count like 5 or a percentage like 10% or 12.5%, got "": the wave is empty'],
    ['0,100%', 0, 'wave 1: expected a device count like 5 or a percentage like 10% or 12.5%, got "0": a device count is at least 1'],
    ['1.5,100%', 0, 'a device count is a whole number'],
    ['10x', 0, 'wave 1: expected a device count like 5 or a percentage like 10% or 12.5%, got "10x"'],
    ['150%', 0, 'a percentage of a wave is above 0% and at most 100%'],
    ['0%', 0, 'a percentage of a wave is above 0% and at most 100%'],
    ['lots%', 0, 'got "lots%"'],
    ['50%,10%', 1, 'wave 2 (10%) does not grow over wave 1 (50%): waves are cumulative targets, like 1,10%,100%'],
    ['5,5', 1, 'wave 2 (5) does not grow over wave 1 (5)'],
  ])('refuses %j at wave index %d', (text, index, detail) => {
    const err = refusal(() => parseWaves(text, '--waves'));
    expect(err.index).toBe(index);
    expect(err.detail).toContain(detail);
    expect(err.message).toBe(`--waves: ${err.detail}`);
  });

  it('needs one wave and allows at most 100', () => {
    expect(refusal(() => parseWaves([], 'waves')).message).toBe('waves: at least one wave is required');
    expect(refusal(() => parseWaves(Array.from({ length: 101 }, (_, i) => String(i + 1)))).detail).toBe('at most 100 waves, got 101');
    expect(parseWaves(Array.from({ length: 100 }, (_, i) => String(i + 1)))).toHaveLength(100);
  });
});

describe('release references', () => {
  it('reads name@version as a manifest declares them', () => {
    expect(parseReleaseRef('weather-station@1.4.0')).toEqual({ name: 'weather-station', version: '1.4.0' });
    expect(parseReleaseRef('app@2.0.0-rc.1+build.5')).toEqual({ name: 'app', version: '2.0.0-rc.1+build.5' });
    expect(formatReleaseRef(parseReleaseRef(' app@1.0.0 '))).toBe('app@1.0.0');
  });

  it.each([
    ['app', 'the @version is missing'],
    ['@1.0.0', 'the name "" must be'],
    ['App@1.0.0', 'the name "App" must be'],
    ['app@', 'the version "" must be a semantic version like 1.4.0'],
    ['app@1.4', 'the version "1.4" must be'],
    ['app@1.0.0@2.0.0', 'the version "1.0.0@2.0.0" must be'],
  ])('refuses %j', (text, why) => {
    const err = refusal(() => parseReleaseRef(text, '--manifest'));
    expect(err.message).toMatch(/^--manifest: expected a release like weather-station@1.4.0, got /);
    expect(err.detail).toContain(why);
  });
});

describe('labels', () => {
  it.each(['site', 'tier-2', 'a', 'A.b_c-d', 'example.com/rack', 'a.b-c.example/x', 'k'.repeat(63), `${'p'.repeat(63)}.${'q'.repeat(63)}/k`])('key %j', (key) => expect(isLabelKey(key)).toBe(true));
  it.each(['', '-site', 'site-', 'bad key', 'k'.repeat(64), 'Example.com/rack', 'a..b/k', '/k', 'p/', 'a/b/c', 'x"y', `${'p'.repeat(254)}/k`])('refuses key %j', (key) => expect(isLabelKey(key)).toBe(false));
  it.each(['', 'berlin', 'v1.2_3-x', 'v'.repeat(63)])('value %j', (v) => expect(isLabelValue(v)).toBe(true));
  it.each(['a b', '-a', 'a-', 'v'.repeat(64), 'ä'])('refuses value %j', (v) => expect(isLabelValue(v)).toBe(false));

  it('names a bad key or value at its path', () => {
    expect(labelsSchema.parse({ site: 'berlin', 'example.com/rack': '' })).toEqual({ site: 'berlin', 'example.com/rack': '' });
    const issues = labelsSchema.safeParse({ 'bad key': 'x', ok: 'a b' }).error!.issues.map((i) => [i.path.join('.'), i.message]);
    expect(issues).toEqual([
      ['bad key', 'expected a label key: a name of 1-63 letters, digits, - _ . (starting and ending with a letter or digit), optionally after a DNS prefix/, got "bad key"'],
      ['ok', 'expected a label value: empty, or 1-63 letters, digits, - _ . (starting and ending with a letter or digit), got "a b"'],
    ]);
  });
});

describe('digests', () => {
  const d = 'sha256:' + 'ab'.repeat(32);
  it('accepts sha256 with 64 lowercase hex, and nothing else', () => {
    expect(parseDigest(d)).toBe(d);
    for (const bad of ['sha256:' + 'AB'.repeat(32), 'sha512:' + 'ab'.repeat(64), 'sha256:abc', d + ' ', '']) {
      expect(refusal(() => parseDigest(bad, 'digest')).message).toBe(`digest: expected a digest sha256:<64 lowercase hex>, got ${JSON.stringify(bad)}`);
    }
  });
});

describe('zod schemas use the same rules and say the same words', () => {
  const body = z.strictObject({ soak: durationMsSchema, memory: sizeBytesSchema, release: releaseRefSchema, digest: digestSchema });
  const good = { soak: '1h30m', memory: '128M', release: 'app@1.0.0', digest: 'sha256:' + '0'.repeat(64) };

  it('transforms to the parsed values', () => {
    expect(body.parse(good)).toEqual({ ...good, soak: 5_400_000, memory: 128 * 1024 ** 2 });
    expect(sizeBytesSchema.parse(2048)).toBe(2048);
  });

  it('reports the parse function detail at the path', () => {
    const res = body.safeParse({ ...good, soak: '10', release: 'app' });
    expect(res.success).toBe(false);
    const issues = res.error!.issues.map((i) => [i.path.join('.'), i.message]);
    expect(issues).toEqual([
      ['soak', refusal(() => parseDuration('10')).detail],
      ['release', refusal(() => parseReleaseRef('app')).detail],
    ]);
  });

  it('names a value of the wrong type the way a person wrote it', () => {
    expect(durationMsSchema.safeParse(10).error!.issues[0].message).toBe('expected a duration like 30s, 1m30s or 500ms, got 10');
    expect(sizeBytesSchema.safeParse([1]).error!.issues[0].message).toBe('expected a size like 128M, 1g, 512k or a number of bytes, got a list');
    expect(releaseRefSchema.safeParse(undefined).error!.issues[0].message).toBe('required: expected a release like weather-station@1.4.0');
  });
});
