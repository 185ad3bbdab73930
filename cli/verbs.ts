/**
 * The verb table as the CLI runs it: every verb's declaration (usage, flags, help, examples) comes
 * from the light table commands/verb-table.ts, plain data, and a verb's module is imported only
 * when that verb runs. So `berth __complete` (each TAB), `berth --help`, a verb's `--help` and
 * usage errors never load the verbs' code, the contract's schemas (zod) or the HTTP client:
 * measured in cli/README.md ("Start-up"). commands/index.ts stays the table people edit; the
 * light one is generated from it and checked against it (test/unit/cli-verb-table.test.ts).
 */
import type { Command } from './context.js';
import { isLeaf, type LeafEntry, type VerbEntry } from './framework.js';
import { VERB_ALIASES, VERB_TABLE } from './commands/verb-table.js';

export const VERBS: Record<string, VerbEntry> = VERB_TABLE;
/** Other spellings of a verb (the singular of a noun); commands/index.ts ALIASES. */
export const ALIASES: Record<string, string> = VERB_ALIASES;

export function aliasesOf(verb: string): string[] {
  return Object.keys(ALIASES).filter((a) => ALIASES[a] === verb);
}

export function verbNamed(name: string): VerbEntry | undefined {
  return Object.hasOwn(VERBS, name) ? VERBS[name] : Object.hasOwn(ALIASES, name) ? VERBS[ALIASES[name]] : undefined;
}

/** The declaration for a parsed path (commander's canonical names, never an alias). */
export function entryAt(path: string[]): LeafEntry {
  const verb = VERBS[path[0]];
  return isLeaf(verb) ? verb : verb[path[1]];
}

/** The verb's code, imported now: one module of commands/ and what it imports. */
export async function loadCommand(entry: LeafEntry): Promise<Command> {
  const { module, export: name, key } = entry.from;
  const file = `./commands/${module}.js`;
  // A module named by the table, not a pattern for a bundler to expand.
  const mod = (await import(/* @vite-ignore */ file)) as Record<string, Command | Record<string, Command>>;
  const found = key === undefined ? mod[name] : (mod[name] as Record<string, Command> | undefined)?.[key];
  // The light table is checked against the real one by a unit test; this is for a build that skipped it.
  if (!found || typeof (found as Command).run !== 'function') throw new Error(`cli/commands/${module} has no ${[name, key].filter(Boolean).join('.')} (regenerate commands/verb-table.ts)`);
  return found as Command;
}
