import { describe, expect, it } from 'vitest';
import { ALIASES, VERBS } from '../../cli/commands/index.js';
import { candidates, completionScript, FILE_DIRECTIVE, serialsAfter, wanted } from '../../cli/completion.js';

/** What the server would offer, recorded: the kind asked for and the prefix. */
function server() {
  const asked: string[] = [];
  const lookup = async (kind: string, prefix: string) => {
    asked.push(`${kind}:${prefix}`);
    return kind === 'serial' ? ['gw-1', 'gw-2', 'hub-1'] : kind === 'release' ? ['demo@1.0.0', 'demo@2.0.0'] : ['cmp_ab12', 'cmp_cd34'];
  };
  return { asked, lookup };
}
const complete = (words: string[], s = server()) => candidates(words, VERBS, ALIASES, s.lookup);

describe('completion candidates', () => {
  it('offers verbs (not the hidden __complete), subcommands of plural and singular nouns, and help topics', async () => {
    const verbs = await complete(['']);
    expect(verbs).toEqual(expect.arrayContaining(['devices', 'campaigns', 'completion', 'help', 'control-plane']));
    expect(verbs).not.toContain('__complete');
    expect(new Set(verbs).size).toBe(verbs.length);
    expect(await complete(['dev'])).toEqual(['devices']);
    expect(await complete(['campaign', 'st'])).toEqual(['start', 'status']);
    expect(await complete(['help', 'manifests', 'v'])).toEqual(['validate']);
    expect(await complete(['completion', ''])).toEqual(['bash', 'zsh', 'fish']);
  });
  it('offers the flags of the verb and the global ones, and the values a flag takes', async () => {
    expect(await complete(['devices', 'list', '--l'])).toEqual(['--limit']);
    expect(await complete(['devices', 'list', '--'])).toEqual(expect.arrayContaining(['--selector', '--after', '--server', '--output', '--help']));
    expect(await complete(['campaigns', 'create', '--on-failure', ''])).toEqual(['pause', 'rollback']);
    expect(await complete(['tokens', 'create', '--role', 'v'])).toEqual(['viewer']);
    expect(await complete(['--server', 'http://x', '-o', 'j'])).toEqual(['json']);
    expect(await complete(['--server', 'http://x', 'dev'])).toEqual(['devices']);
  });
  it('asks the server for serials, releases and campaign ids where they go, and for nothing elsewhere', async () => {
    const s = server();
    expect(await complete(['devices', 'show', 'gw'], s)).toEqual(['gw-1', 'gw-2']);
    expect(await complete(['campaigns', 'create', '-l', 'site=x', '--manifest', 'demo@2'], s)).toEqual(['demo@2.0.0']);
    expect(await complete(['campaigns', 'abort', 'cmp_c'], s)).toEqual(['cmp_cd34']);
    expect(await complete(['logs', 'gw-1', ''], s)).toEqual([]);
    expect(await complete(['devices', 'label', 'gw-1', 'si'], s)).toEqual([]);
    expect(await complete(['fleet', 'status', ''], s)).toEqual([]);
    expect(s.asked).toEqual(['serial:gw', 'release:demo@2', 'campaign:cmp_c']);
  });
  it('asks for context names after --context and in context use|rm, and nowhere else in context', () => {
    expect(wanted(['--context', ''], VERBS, ALIASES)).toEqual({ kind: 'context' });
    expect(wanted(['devices', 'list', '--context', 'st'], VERBS, ALIASES)).toEqual({ kind: 'context' });
    expect(wanted(['context', 'use', ''], VERBS, ALIASES)).toEqual({ kind: 'context' });
    expect(wanted(['context', 'rm', 'st'], VERBS, ALIASES)).toEqual({ kind: 'context' });
    expect(wanted(['context', 'add', ''], VERBS, ALIASES)).toEqual({ words: [] });
  });
  it('hands file names to the shell', async () => {
    expect(await complete(['apply', '-f', ''])).toEqual([FILE_DIRECTIVE]);
    expect(await complete(['manifests', 'validate', 'a.yaml', ''])).toEqual([FILE_DIRECTIVE]);
    expect(wanted(['devices', 'import', ''], VERBS, ALIASES)).toEqual({ kind: 'file' });
  });
  it('starts the serial page just below the first serial with the prefix', () => {
    expect(serialsAfter('')).toBeUndefined();
    expect(serialsAfter('gw-b')).toBe('gw-a~');
    for (const s of ['gw-b', 'gw-b1', 'gw-bz']) expect(s > serialsAfter('gw-b')!).toBe(true);
    expect('gw-az' < serialsAfter('gw-b')!).toBe(true);
  });
  it('writes scripts that call berth __complete in each shell', () => {
    expect(completionScript('bash')).toMatch(/berth __complete -- "\$\{COMP_WORDS\[@\]:1:COMP_CWORD\}"/);
    expect(completionScript('zsh')).toMatch(/^#compdef berth\n[\s\S]*berth __complete -- "\$\{\(@\)words\[2,CURRENT\]\}"[\s\S]*compdef _berth berth/);
    expect(completionScript('fish')).toMatch(/berth __complete -- \$words[\s\S]*complete -c berth -f -a '\(__berth_complete\)'/);
  });
});
