/**
 * Pure parsing of the operator verbs' arguments: durations, percentages, waves, label edits and
 * the command line itself. No I/O here, so every rule is unit-tested.
 */
import { parseArgs } from 'node:util';
import { CliError, usageError } from './errors.js';

export type OptionSpec = { type: 'string' | 'boolean'; short?: string; multiple?: boolean };

/** Options every verb accepts. */
export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  server: { type: 'string' },
  token: { type: 'string' },
  output: { type: 'string', short: 'o' },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

export type OutputFormat = 'table' | 'json';

export interface ParsedCommand {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  output: OutputFormat;
  debug: boolean;
  help: boolean;
}

export function parseCommand(argv: string[], options: Record<string, OptionSpec>, usage: string): ParsedCommand {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options: { ...GLOBAL_OPTIONS, ...options }, allowPositionals: true, strict: true });
  } catch (err) {
    // node:util's messages are clear ("Unknown option '--x'"); keep them, add the usage.
    throw usageError(err instanceof Error ? err.message.split('\n')[0] : String(err), usage);
  }
  const values = parsed.values as ParsedCommand['values'];
  return {
    values,
    positionals: parsed.positionals,
    output: parseOutput(values.output as string | undefined),
    debug: values.debug === true,
    help: values.help === true,
  };
}

export function parseOutput(value: string | undefined): OutputFormat {
  if (value === undefined || value === 'table' || value === 'wide') return 'table';
  if (value === 'json') return 'json';
  throw new CliError(`--output ${JSON.stringify(value)} is not a known format`, 'use --output json or --output table', 2);
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** "90s", "10m", "2h", "1h30m", "30d" → milliseconds. A bare number is refused: units matter. */
export function parseDuration(text: string, flag: string): number {
  const t = text.trim();
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(t); m; m = re.exec(t)) {
    total += Number(m[1]) * DURATION_UNITS[m[2]];
    consumed = re.lastIndex;
  }
  if (!t || consumed !== t.length) {
    throw new CliError(`${flag} ${JSON.stringify(text)} is not a duration`, 'write it like 90s, 10m, 2h, 1h30m or 30d', 2);
  }
  return Math.round(total);
}

/** "95%" or "95" → 95; 0 ≤ p ≤ 100. */
export function parsePercent(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)%?$/.exec(text.trim());
  const p = m ? Number(m[1]) : NaN;
  if (!(p >= 0 && p <= 100)) throw new CliError(`${flag} ${JSON.stringify(text)} is not a percentage`, 'write it like 95% (0-100)', 2);
  return p;
}

export type WaveSize = { count: number } | { percent: number };

/**
 * "1,10%,100%" → [{count:1},{percent:10},{percent:100}]: cumulative targets, a device count or a
 * share of the selected devices. Checked here so a typo fails before anything reaches the server.
 */
export function parseWaves(text: string): WaveSize[] {
  const parts = text.split(',').map((s) => s.trim());
  if (parts.length === 0 || parts.some((p) => p === '')) {
    throw new CliError(`--waves ${JSON.stringify(text)} has an empty wave`, 'write waves like 1,10%,100%', 2);
  }
  const waves: WaveSize[] = parts.map((p, i) => {
    if (p.endsWith('%')) {
      const percent = Number(p.slice(0, -1));
      if (!(percent > 0 && percent <= 100)) throw new CliError(`--waves: wave ${i + 1} (${p}) must be a percentage in (0, 100]`, 'write waves like 1,10%,100%', 2);
      return { percent };
    }
    if (!/^\d+$/.test(p) || Number(p) < 1) throw new CliError(`--waves: wave ${i + 1} (${p}) must be a device count ≥ 1 or a percentage`, 'write waves like 1,10%,100%', 2);
    return { count: Number(p) };
  });
  // Cumulative targets: a wave must grow over the previous one of the same kind (as the server checks).
  for (let i = 1; i < waves.length; i++) {
    const a = waves[i - 1];
    const b = waves[i];
    const shrinks = ('count' in a && 'count' in b && b.count <= a.count) || ('percent' in a && 'percent' in b && b.percent <= a.percent);
    if (shrinks) throw new CliError(`--waves: wave ${i + 1} (${formatWaves([b])}) does not grow over wave ${i} (${formatWaves([a])})`, 'waves are cumulative targets: 1,10%,50%,100%', 2);
  }
  return waves;
}

export function formatWaves(waves: WaveSize[]): string {
  return waves.map((w) => ('count' in w ? String(w.count) : `${w.percent}%`)).join(',');
}

export interface LabelEdit {
  set: Record<string, string>;
  remove: string[];
}

const LABEL_KEY = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?\/)?[a-zA-Z0-9]([-a-zA-Z0-9_.]{0,61}[a-zA-Z0-9])?$/;
const LABEL_VALUE = /^([a-zA-Z0-9]([-a-zA-Z0-9_.]{0,61}[a-zA-Z0-9])?)?$/;

/** kubectl's syntax: `k=v` sets, `k-` removes. */
export function parseLabelEdits(args: string[]): LabelEdit {
  if (args.length === 0) throw new CliError('no labels given', 'write labels like site=berlin tier=canary, or site- to remove one', 2);
  const edit: LabelEdit = { set: {}, remove: [] };
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq < 0 && arg.endsWith('-')) {
      const key = arg.slice(0, -1);
      if (!LABEL_KEY.test(key)) throw new CliError(`label key ${JSON.stringify(key)} is not valid`, 'keys are letters, digits, - _ . (optionally prefix/), at most 63 characters', 2);
      edit.remove.push(key);
      continue;
    }
    if (eq <= 0) throw new CliError(`${JSON.stringify(arg)} is neither k=v nor k-`, 'write labels like site=berlin, or site- to remove one', 2);
    const key = arg.slice(0, eq);
    const value = arg.slice(eq + 1);
    if (!LABEL_KEY.test(key)) throw new CliError(`label key ${JSON.stringify(key)} is not valid`, 'keys are letters, digits, - _ . (optionally prefix/), at most 63 characters', 2);
    if (!LABEL_VALUE.test(value)) throw new CliError(`label value ${JSON.stringify(value)} for ${key} is not valid`, 'values are letters, digits, - _ . at most 63 characters', 2);
    edit.set[key] = value;
  }
  const both = edit.remove.filter((k) => k in edit.set);
  if (both.length) throw new CliError(`label ${both[0]} is both set and removed`, 'give each key once', 2);
  return edit;
}

/** "NAME@VERSION" → parts; the version is required because published manifests are immutable per version. */
export function parseManifestRef(text: string, what = 'manifest'): { name: string; version: string } {
  const at = text.lastIndexOf('@');
  const name = at > 0 ? text.slice(0, at) : '';
  const version = at > 0 ? text.slice(at + 1) : '';
  if (!name || !version) throw new CliError(`${what} ${JSON.stringify(text)} must be NAME@VERSION`, 'e.g. berth manifests show demo@1.0.0', 2);
  return { name, version };
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

export function requirePositionals(parsed: ParsedCommand, names: string[], usage: string, allowMore = false): string[] {
  if (parsed.positionals.length < names.length) throw usageError(`missing ${names.slice(parsed.positionals.length).join(' ')}`, usage);
  if (!allowMore && parsed.positionals.length > names.length) throw usageError(`unexpected argument ${JSON.stringify(parsed.positionals[names.length])}`, usage);
  return parsed.positionals;
}

export function stringFlag(parsed: ParsedCommand, name: string): string | undefined {
  const v = parsed.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function requireFlag(parsed: ParsedCommand, name: string, usage: string): string {
  const v = stringFlag(parsed, name);
  if (v === undefined || v === '') throw usageError(`--${name} is required`, usage);
  return v;
}
