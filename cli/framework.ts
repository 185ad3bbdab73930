/**
 * The command line, parsed by commander (see cli/README.md, "Framework", for why commander and not
 * yargs). The verbs stay data: each declares `{usage, about, options, examples, run}` (context.ts)
 * and this file turns the table into commander commands, so flags, help, suggestions and
 * completion all come from one declaration. Parsing only records what was asked; the verb runs
 * after commander returns, so its errors are reported like every other CLI error (index.ts).
 */
import { Command as Cmd, CommanderError, Option } from 'commander';
import type { z } from 'zod';
import { CliError, usageError } from './errors.js';

/** What a flag or a positional names, for completion (`berth __complete`). */
export type ArgKind = 'serial' | 'release' | 'campaign' | 'context' | 'file' | 'none';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** Repeatable: the values come as a list (`--allow a --allow b`). */
  multiple?: boolean;
  /** One line for `--help`. */
  description?: string;
  /** The value's name in help and usage: `--success PCT`. */
  value?: string;
  /** The default shown in help: the server's own (read from protocol/), never applied by the CLI. */
  default?: string;
  /** What the value names, for completion. */
  complete?: ArgKind;
  /** The values it takes, for completion and help; the verb still checks the value with its own words. */
  choices?: readonly string[];
  hidden?: boolean;
}

/** Options every verb accepts, before the verb (`berth --server URL devices list`) or after it. */
export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  server: { type: 'string', value: 'URL', description: 'the control plane (else BERTH_SERVER, else what `berth login` stored)' },
  token: { type: 'string', value: 'T', description: 'an operator token; shows in shell history and ps: prefer BERTH_TOKEN or `berth login`' },
  'ca-file': { type: 'string', value: 'PEM', complete: 'file', description: "the fleet CA's certificate for an https:// server (else BERTH_CA_FILE)" },
  context: { type: 'string', value: 'NAME', complete: 'context', description: 'the stored context to use for this command (else BERTH_CONTEXT, else the current one: berth context list)' },
  output: { type: 'string', short: 'o', value: 'FORMAT', default: 'table', choices: ['table', 'wide', 'json', 'yaml', 'name'], description: 'table, wide (more columns), json (stable shapes), yaml, or name (one a line)' },
  debug: { type: 'boolean', description: 'print the stack trace with an error' },
};

export type OutputFormat = 'table' | 'json';
/** What the operator asked for; yaml and name are made from a verb's JSON (output.ts), wide is its table with more columns. */
export type RequestedFormat = 'table' | 'wide' | 'json' | 'yaml' | 'name';
export const OUTPUT_FORMATS: readonly RequestedFormat[] = ['table', 'wide', 'json', 'yaml', 'name'];

export interface ParsedCommand {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  output: OutputFormat;
  /** As asked: `output` is json for yaml and name (the verb prints JSON, reshaped on the way out). */
  format: RequestedFormat;
  /** `-o wide`: tables add their extra columns. */
  wide: boolean;
  debug: boolean;
  help: boolean;
}

/** A verb's declaration, as commands/*.ts write it (context.ts `Command` adds `run`). */
export interface LeafSpec {
  usage: string;
  about: string;
  /** More for `--help`, after the options. */
  help?: string;
  options: Record<string, OptionSpec>;
  /** Command lines shown under `examples:` in `--help`; every verb has at least one. */
  examples: string[];
  /** What each positional names, for completion; the last one repeats. */
  args?: ArgKind[];
  /** Left out of the verb list and of completion (`berth __complete`, which the shell scripts call). */
  hidden?: boolean;
}

/** Where a verb's code lives: a module of cli/commands/, its export, and the key when the export is a group. */
export interface VerbSource {
  module: string;
  export: string;
  key?: string;
}

/** A verb as the light table (commands/verb-table.ts) holds it: its declaration and where to load it from. */
export interface LeafEntry extends LeafSpec {
  from: VerbSource;
}

/** A verb, or a noun grouping subcommands (`berth devices list`), declared but not loaded. */
export type VerbEntry = LeafEntry | Record<string, LeafEntry>;

/** A declaration (its `usage`), not a group of them. */
export function isLeaf<T extends LeafSpec>(v: T | Record<string, T>): v is T {
  return typeof (v as LeafSpec).usage === 'string';
}

/**
 * The value the server takes for a field a request leaves out, read from the contract's schema
 * (protocol/) itself, so `--help` cannot drift from the server's default.
 */
export function contractDefault(field: z.ZodType): unknown {
  return field.parse(undefined);
}

export function parseOutput(value: string | undefined): RequestedFormat {
  if (value === undefined) return 'table';
  if ((OUTPUT_FORMATS as readonly string[]).includes(value)) return value as RequestedFormat;
  throw new CliError(`--output ${JSON.stringify(value)} is not a known format`, `use one of: ${OUTPUT_FORMATS.join(', ')}`, 2);
}

/** `--success PCT`, `-l, --selector SEL`: how a flag is written in help and usage. */
export function flagTerm(long: string, o: OptionSpec): string {
  const name = `${o.short ? `-${o.short}, ` : ''}--${long}`;
  return o.type === 'string' ? `${name} ${o.value ?? 'VALUE'}` : name;
}

function optionLines(options: [string, OptionSpec][]): string[] {
  const shown = options.filter(([, o]) => !o.hidden);
  const terms = shown.map(([long, o]) => flagTerm(long, o));
  const width = Math.min(28, Math.max(0, ...terms.map((t) => t.length)) + 2);
  return shown.map(([, o], i) => {
    const text = `${o.description ?? ''}${o.default !== undefined ? ` (default ${o.default})` : ''}${o.multiple ? ' (repeatable)' : ''}`;
    return terms[i].length + 2 > width ? `  ${terms[i]}\n  ${' '.repeat(width)}${text}` : `  ${terms[i].padEnd(width)}${text}`;
  });
}

/** The whole `--help` of a verb: what it does, usage, each flag with its default, examples, global flags. */
export function leafHelp(spec: LeafSpec): string {
  const own = Object.entries(spec.options);
  const globals = Object.entries(GLOBAL_OPTIONS).filter(([k]) => !Object.hasOwn(spec.options, k));
  return [
    spec.about,
    '',
    `usage: ${spec.usage}`,
    ...(own.length ? ['', 'options:', ...optionLines(own)] : []),
    ...(spec.help ? ['', spec.help] : []),
    '',
    'examples:',
    ...spec.examples.map((e) => `  ${e}`),
    '',
    'global options:',
    ...optionLines([...globals, ['help', { type: 'boolean', short: 'h', description: 'this help' }]]),
  ].join('\n');
}

/** The `--help` of a verb with subcommands (`berth devices`). */
export function groupHelp(name: string, subs: Record<string, LeafSpec>, aliases: string[] = []): string {
  const entries = Object.values(subs);
  return [
    `usage: berth ${name} <${Object.keys(subs).join('|')}> …`,
    '',
    ...entries.map((c) => `  ${c.usage}\n      ${c.about}`),
    '',
    'examples:',
    ...entries.map((c) => `  ${c.examples[0]}`),
    '',
    `\`berth help ${name} SUBCOMMAND\` (or \`berth ${name} SUBCOMMAND --help\`) shows its options and examples.`,
    ...(aliases.length ? [`also spelled: ${aliases.join(', ')}`] : []),
  ].join('\n');
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function toOption(long: string, o: OptionSpec): Option {
  const flags = `${o.short ? `-${o.short}, ` : ''}--${long}${o.type === 'string' ? ` <${o.value ?? 'value'}>` : ''}`;
  const opt = new Option(flags, o.description ?? '');
  if (o.multiple) opt.argParser(collect);
  if (o.hidden) opt.hideHelp();
  return opt;
}

/** Where commander writes: help goes to `out`, its own error lines are dropped (the CLI prints its own). */
export interface Sink {
  out: (text: string) => void;
  err: (text: string) => void;
}

/** Applied to every command: commander must never exit the process or print on its own. */
function tame(cmd: Cmd, sink: Sink, help: () => string): Cmd {
  return cmd
    .exitOverride((err) => {
      throw new ParseFailure(err, cmd);
    })
    .configureOutput({ writeOut: (s) => sink.out(s.replace(/\n$/, '')), writeErr: (s) => sink.err(s.replace(/\n$/, '')), outputError: () => undefined })
    .configureHelp({ formatHelp: () => help() + '\n' })
    .showSuggestionAfterError(true);
}

/** A parse that commander refused, with the command it was parsing (for the message). */
export class ParseFailure extends Error {
  constructor(
    readonly failure: CommanderError,
    readonly where: Cmd,
  ) {
    super(failure.message);
  }
}

/** What one leaf's parse recorded: the verb's values, before the globals given ahead of the verb are merged in. */
export interface Parsed {
  path: string[];
  values: ParsedCommand['values'];
  positionals: string[];
}

/** A commander command for one verb; `onParse` receives what was asked (it runs nothing itself). */
export function leafCommand(name: string, spec: LeafSpec, sink: Sink, onParse: (p: Parsed) => void): Cmd {
  const cmd = new Cmd(name).description(spec.about).usage(spec.usage).argument('[args...]');
  const all: [string, OptionSpec][] = [...Object.entries(spec.options), ...Object.entries(GLOBAL_OPTIONS).filter(([k]) => !Object.hasOwn(spec.options, k))];
  for (const [long, o] of all) cmd.addOption(toOption(long, o));
  cmd.action((positionals: string[], _opts: unknown, self: Cmd) => {
    const opts = self.opts();
    const values: ParsedCommand['values'] = {};
    for (const opt of self.options) {
      const long = opt.long?.slice(2);
      const v = opts[opt.attributeName()] as string | boolean | string[] | undefined;
      if (long && v !== undefined) values[long] = v;
    }
    const path: string[] = [];
    for (let c: Cmd | null = self; c?.parent; c = c.parent) path.unshift(c.name());
    onParse({ path, values, positionals });
  });
  return tame(cmd, sink, () => leafHelp(spec));
}

/** The value and flag of a parse, as the verbs read them. */
export function toParsed(values: ParsedCommand['values'], positionals: string[], help = false): ParsedCommand {
  const format = parseOutput(values.output as string | undefined);
  return { values, positionals, output: format === 'table' || format === 'wide' ? 'table' : 'json', format, wide: format === 'wide', debug: values.debug === true, help };
}

/** A group of subcommands (`berth devices`): it has no action, so commander asks for a subcommand. */
export function groupCommand(name: string, aliases: string[], subs: Record<string, LeafSpec>, sink: Sink, onParse: (p: Parsed) => void): Cmd {
  const group = tame(new Cmd(name).aliases(aliases).usage(`berth ${name} <${Object.keys(subs).join('|')}> …`).helpCommand(false), sink, () => groupHelp(name, subs, aliases));
  for (const [sub, spec] of Object.entries(subs)) group.addCommand(leafCommand(sub, spec, sink, onParse));
  return group;
}

/** The root: global options before the verb, each verb a subcommand. */
export function rootCommand(sink: Sink, help: () => string): Cmd {
  const root = tame(new Cmd('berth').helpCommand(false).enablePositionalOptions(), sink, help);
  for (const [long, o] of Object.entries(GLOBAL_OPTIONS)) root.addOption(toOption(long, o));
  return root;
}

/**
 * Commander's refusal as the CLI's one-line error: exit 2 and the usage. Help that was asked for
 * is exit 0 (it is already printed); help for a verb given without its subcommand is exit 2.
 */
export function refusal(err: ParseFailure): CliError | { helped: number } {
  const { code } = err.failure;
  if (code === 'commander.helpDisplayed' || code === 'commander.version') return { helped: 0 };
  if (code === 'commander.help') return { helped: 2 };
  const [first, ...rest] = err.failure.message.replace(/^error: /, '').split('\n');
  const suggestion = rest.join(' ').replace(/^\(Did you mean (.*)\?\)$/, (_m, s: string) => `did you mean ${s}?`);
  const where = err.where;
  if (code === 'commander.unknownCommand') {
    const typed = where.args[0] ?? '';
    if (!where.parent) return new CliError(`unknown verb ${JSON.stringify(typed)}${suggestion ? ` (${suggestion})` : ''}`, undefined, 2);
    const subs = where.commands.map((c) => c.name());
    return new CliError(`${where.name()} has no subcommand ${JSON.stringify(typed)}; use one of: ${subs.join(', ')}${suggestion ? ` (${suggestion})` : ''}`, undefined, 2);
  }
  // "option '-l, --selector <SEL>' argument missing" reads better as what to write.
  const missing = code === 'commander.optionMissingArgument' ? /'(?:-\w, )?(--[\w-]+) <([^>]+)>'/.exec(first) : null;
  if (missing) return usageError(`${missing[1]} needs a value: ${missing[1]} ${missing[2]}`, where.usage());
  return usageError(`${first}${suggestion ? ` (${suggestion})` : ''}`, where.usage());
}

/**
 * One verb's arguments, parsed as `berth VERB` parses them (for tests and for callers that hold a
 * single command): a refused flag is a usage error naming `usage`.
 */
export function parseCommand(argv: string[], options: Record<string, OptionSpec>, usage: string): ParsedCommand {
  let parsed: Parsed | undefined;
  let helped = false;
  const cmd = leafCommand('verb', { usage, about: '', options, examples: [] }, { out: () => undefined, err: () => undefined }, (p) => (parsed = p));
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (err) {
    if (!(err instanceof ParseFailure)) throw err;
    const r = refusal(err);
    if (r instanceof CliError) throw r;
    helped = true;
  }
  if (helped || !parsed) return { ...toParsed({}, []), help: true };
  return toParsed(parsed.values, parsed.positionals);
}
