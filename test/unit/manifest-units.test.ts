import { describe, expect, it } from 'vitest';
import { parseBytes, parseDurationMs, parseNanoCpus, splitShellWords, splitVolumeShort } from '../../manifests/units.js';

describe('parseDurationMs', () => {
  it.each([
    ['30s', 30_000], ['1m30s', 90_000], ['500ms', 500], ['1h', 3_600_000], ['1.5s', 1500], ['0', 0], ['0s', 0], ['2h1m1s10ms', 7_261_010],
  ])('%s → %d ms', (text, ms) => expect(parseDurationMs(text)).toBe(ms));
  it.each(['fast', '', '10', 's', '1d', '-5s', '1 s', '5S'])('refuses %j', (text) => expect(parseDurationMs(text)).toBeUndefined());
});

describe('parseBytes', () => {
  it.each([
    ['128M', 134_217_728], ['1g', 1_073_741_824], ['512k', 524_288], ['512kb', 524_288], ['2b', 2], ['1.5g', 1_610_612_736], ['4096', 4096], [4096, 4096],
  ] as const)('%s → %d bytes', (v, n) => expect(parseBytes(v)).toBe(n));
  it.each(['lots', '12Q', '', '-1m', '0', 0, 1.5, -3])('refuses %j', (v) => expect(parseBytes(v)).toBeUndefined());
});

describe('parseNanoCpus', () => {
  it.each([['0.5', 500_000_000], [2, 2_000_000_000], ['1.25', 1_250_000_000]] as const)('%s → %d', (v, n) => expect(parseNanoCpus(v)).toBe(n));
  it.each(['half', '0', 0, '-1', '1e3'])('refuses %j', (v) => expect(parseNanoCpus(v)).toBeUndefined());
});

describe('splitShellWords', () => {
  it.each([
    ['/bin/app --port 8080', ['/bin/app', '--port', '8080']],
    ["sh -c 'echo $HOME && exit 1'", ['sh', '-c', 'echo $HOME && exit 1']],
    ['echo "a \\"b\\" c"', ['echo', 'a "b" c']],
    ['a\\ b  c', ['a b', 'c']],
    ['x""y \'\'', ['xy', '']],
    ['  ', []],
  ])('%j', (text, words) => expect(splitShellWords(text)).toEqual({ words }));
  it.each([["echo 'x", 'unterminated single quote'], ['echo "x', 'unterminated double quote'], ['x\\', 'trailing backslash']])('%j → %s', (text, error) =>
    expect(splitShellWords(text)).toEqual({ error }),
  );
});

describe('splitVolumeShort', () => {
  it('splits name:/path[:mode]', () => {
    expect(splitVolumeShort('data:/var/lib/x')).toEqual({ source: 'data', target: '/var/lib/x', readOnly: false });
    expect(splitVolumeShort('data:/x:ro')).toEqual({ source: 'data', target: '/x', readOnly: true });
    expect(splitVolumeShort('data:/x:rw')).toEqual({ source: 'data', target: '/x', readOnly: false });
  });
  it.each([
    ['./conf:/etc/conf', /bind mount/],
    ['~/x:/x', /bind mount/],
    ['/x', /anonymous volume/],
    ['data:relative', /absolute path/],
    ['data:/x:z', /mount mode "z"/],
    ['a:/b:ro:x', /expected name:\/path/],
  ])('%j is refused', (spec, why) => {
    const r = splitVolumeShort(spec);
    expect('error' in r && r.error).toMatch(why);
  });
});
