/**
 * Pure parsing of the operator verbs' values: label edits, --since, required flags and positionals.
 * Durations, percentages, waves and releases are read with common/grammar.ts, as the server reads
 * them. No I/O here, so every rule is unit-tested.
 */
import { z } from 'zod';
import { GrammarError, isLabelKey, isLabelValue, parseDuration } from '../common/grammar.js';
import { CliError, usageError } from './errors.js';
import type { OptionSpec, ParsedCommand } from './framework.js';
import { stringFlag } from './positionals.js';

// Here too, as the verbs always imported them; positionals.ts has them without zod for the light paths.
export { requirePositionals, stringFlag } from './positionals.js';

// The command line itself is parsed by commander (framework.ts); these are re-exported for the verbs.
export { GLOBAL_OPTIONS, OUTPUT_FORMATS, parseCommand, parseOutput } from './framework.js';
export type { OptionSpec, OutputFormat, ParsedCommand, RequestedFormat } from './framework.js';

/** Where the forms of durations, sizes, percentages, waves and releases are listed for people. */
export const VALUES_HINT = 'the accepted forms of durations, percentages, waves and releases are in cli/README.md ("Values")';

/**
 * Checks a flag's value with a schema the server uses for the same field (protocol/), so the CLI
 * refuses exactly what the server would, in the same words; the refusal names the flag.
 */
export function checkFlag<S extends z.ZodType>(schema: S, value: z.input<S>, flag: string): z.output<S> {
  const res = schema.safeParse(value);
  if (!res.success) throw new GrammarError(flag, res.error.issues[0].message);
  return res.data;
}

export interface LabelEdit {
  set: Record<string, string>;
  remove: string[];
}


/** kubectl's syntax: `k=v` sets, `k-` removes. */
export function parseLabelEdits(args: string[]): LabelEdit {
  if (args.length === 0) throw new CliError('no labels given', 'write labels like site=berlin tier=canary, or site- to remove one', 2);
  const edit: LabelEdit = { set: {}, remove: [] };
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq < 0 && arg.endsWith('-')) {
      const key = arg.slice(0, -1);
      if (!isLabelKey(key)) throw new CliError(`label key ${JSON.stringify(key)} is not valid`, 'keys are letters, digits, - _ . (optionally prefix/), at most 63 characters', 2);
      edit.remove.push(key);
      continue;
    }
    if (eq <= 0) throw new CliError(`${JSON.stringify(arg)} is neither k=v nor k-`, 'write labels like site=berlin, or site- to remove one', 2);
    const key = arg.slice(0, eq);
    const value = arg.slice(eq + 1);
    if (!isLabelKey(key)) throw new CliError(`label key ${JSON.stringify(key)} is not valid`, 'keys are letters, digits, - _ . (optionally prefix/), at most 63 characters', 2);
    if (!isLabelValue(value)) throw new CliError(`label value ${JSON.stringify(value)} for ${key} is not valid`, 'values are letters, digits, - _ . at most 63 characters', 2);
    edit.set[key] = value;
  }
  const both = edit.remove.filter((k) => k in edit.set);
  if (both.length) throw new CliError(`label ${both[0]} is both set and removed`, 'give each key once', 2);
  return edit;
}

/**
 * `--since` for the audit log: an ISO timestamp or a duration back from now ("1h", "7d").
 * Returns an ISO string; `now` is passed in to keep this pure.
 */
export function parseSince(text: string, now: Date): string {
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const d = new Date(text);
    if (Number.isNaN(d.getTime())) throw new CliError(`--since ${JSON.stringify(text)} is not a valid date`, 'use an ISO date (2026-01-31T12:00:00Z) or a duration (1h, 7d)', 2);
    return d.toISOString();
  }
  return new Date(now.getTime() - parseDuration(text, '--since')).toISOString();
}

export function requireFlag(parsed: ParsedCommand, name: string, usage: string): string {
  const v = stringFlag(parsed, name);
  if (v === undefined || v === '') throw usageError(`--${name} is required`, usage);
  return v;
}

/** `--device SERIAL | --selector SEL | --fleet`: the scope flags of `berth vars` and `berth secrets`. */
export const scopeOptions: Record<string, OptionSpec> = {
  device: { type: 'string', value: 'SERIAL', complete: 'serial', description: 'one device' },
  selector: { type: 'string', short: 'l', value: 'SEL', description: 'the devices a label selector picks (site=berlin,tier!=canary)' },
  fleet: { type: 'boolean', description: 'every device' },
};

/** The one scope given with `scopeOptions`; a usage error (exit 2) unless exactly one is. */
export function scopeFlag(parsed: ParsedCommand, usage: string): { scope: 'device' | 'selector'; target: string } | { scope: 'fleet'; target?: undefined } {
  const device = stringFlag(parsed, 'device');
  const selector = stringFlag(parsed, 'selector');
  const fleet = parsed.values.fleet === true;
  if ([device !== undefined, selector !== undefined, fleet].filter(Boolean).length !== 1) throw usageError('give exactly one of --device SERIAL, --selector SEL, --fleet', usage);
  if (device !== undefined) return { scope: 'device', target: device };
  if (selector !== undefined) return { scope: 'selector', target: selector };
  return { scope: 'fleet' };
}
