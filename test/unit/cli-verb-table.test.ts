import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ALIASES, isCommand, VERBS } from '../../cli/commands/index.js';
import type { Command } from '../../cli/context.js';
import type { LeafEntry, VerbSource } from '../../cli/framework.js';
import { loadCommand, VERBS as LIGHT, ALIASES as LIGHT_ALIASES } from '../../cli/verbs.js';

/**
 * The light verb table (cli/commands/verb-table.ts) is generated here from the one people edit
 * (commands/index.ts): after adding or changing a verb, run
 *   NO_COLOR=1 npx vitest run test/unit/cli-verb-table.test.ts -u
 * and commit the file. Without -u (and in CI) a table that differs fails this test.
 */
const dir = new URL('../../cli/commands/', import.meta.url);

/** Each command object of commands/*.ts, by identity: the module and export (and group key) it is reachable as. */
async function sources(): Promise<Map<Command, VerbSource>> {
  const found = new Map<Command, VerbSource>();
  const modules = readdirSync(dir).filter((f) => f.endsWith('.ts') && f !== 'index.ts' && f !== 'verb-table.ts').sort();
  for (const file of modules) {
    const module = file.replace(/\.ts$/, '');
    const mod = (await import(new URL(file, dir).href)) as Record<string, unknown>;
    for (const [name, value] of Object.entries(mod)) {
      if (!value || typeof value !== 'object') continue;
      if (typeof (value as Command).run === 'function') {
        if (!found.has(value as Command)) found.set(value as Command, { module, export: name });
        continue;
      }
      for (const [key, c] of Object.entries(value)) {
        if (c && typeof (c as Command).run === 'function' && !found.has(c as Command)) found.set(c as Command, { module, export: name, key });
      }
    }
  }
  return found;
}

function leafLine(c: Command, from: VerbSource | undefined, where: string): string {
  if (!from) throw new Error(`${where}: the command is not exported by a module of cli/commands/ (export it, so it can be loaded alone)`);
  const { run: _run, ...spec } = c;
  return JSON.stringify({ ...spec, from });
}

async function generated(): Promise<string> {
  const from = await sources();
  const lines = [
    '/**',
    ' * GENERATED from the verb table of commands/index.ts (VERBS, ALIASES): do not edit. After changing a',
    ' * verb, regenerate with `NO_COLOR=1 npx vitest run test/unit/cli-verb-table.test.ts -u`. Plain data,',
    ' * so the CLI can parse, complete and show help without loading the verbs\' code (cli/verbs.ts).',
    ' */',
    "import type { VerbEntry } from '../framework.js';",
    '',
    'export const VERB_TABLE: Record<string, VerbEntry> = {',
  ];
  for (const [name, verb] of Object.entries(VERBS)) {
    if (isCommand(verb)) lines.push(`  ${JSON.stringify(name)}: ${leafLine(verb, from.get(verb), name)},`);
    else {
      lines.push(`  ${JSON.stringify(name)}: {`);
      for (const [sub, c] of Object.entries(verb)) lines.push(`    ${JSON.stringify(sub)}: ${leafLine(c, from.get(c), `${name} ${sub}`)},`);
      lines.push('  },');
    }
  }
  lines.push('};', '', `export const VERB_ALIASES: Record<string, string> = ${JSON.stringify(ALIASES)};`, '');
  return lines.join('\n');
}

describe('the light verb table', () => {
  it('is the verb table of commands/index.ts, without the code', async () => {
    await expect(await generated()).toMatchFileSnapshot('../../cli/commands/verb-table.ts');
  });
  it('loads each verb as the very command of commands/index.ts', async () => {
    expect(LIGHT_ALIASES).toEqual(ALIASES);
    for (const [name, verb] of Object.entries(VERBS)) {
      const light = LIGHT[name];
      for (const [sub, c] of isCommand(verb) ? [['', verb] as const] : Object.entries(verb)) {
        const entry = (sub ? (light as Record<string, LeafEntry>)[sub] : light) as LeafEntry;
        expect(await loadCommand(entry), `${name} ${sub}`).toBe(c);
      }
    }
  });
});
