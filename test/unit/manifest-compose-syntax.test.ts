import { describe, expect, it } from 'vitest';
import { parseNanoCpus, splitShellWords, splitVolumeShort } from '../../manifests/compose-syntax.js';

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
