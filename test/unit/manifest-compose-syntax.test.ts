import { describe, expect, it } from 'vitest';
import { parseNanoCpus, splitShellWords } from '../../manifests/compose-syntax.js';
import { parseVolumeShort } from '../../manifests/forms.js';

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

describe('parseVolumeShort', () => {
  it('splits name:/path[:mode] and /gateway/path:/path[:mode]', () => {
    expect(parseVolumeShort('data:/var/lib/x')).toEqual({ value: { kind: 'volume', mount: { source: 'data', target: '/var/lib/x', readOnly: false } } });
    expect(parseVolumeShort('data:/x:ro')).toEqual({ value: { kind: 'volume', mount: { source: 'data', target: '/x', readOnly: true } } });
    expect(parseVolumeShort('/etc/localtime:/etc/localtime:ro')).toEqual({ value: { kind: 'bind', mount: { source: '/etc/localtime', target: '/etc/localtime', readOnly: true, createHostPath: true } } });
  });
  it.each([
    ['./conf:/etc/conf', /relative to the author's machine/],
    ['~/x:/x', /relative to the author's machine/],
    ['/x', /anonymous volume/],
    ['data:relative', /absolute path/],
    ['data:/x:z', /mount option "z"/],
    ['a:/b:ro:x', /expected name:\/path/],
  ])('%j is refused', (spec, why) => {
    const r = parseVolumeShort(spec);
    expect('error' in r && r.error).toMatch(why);
  });
});
