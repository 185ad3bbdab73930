/**
 * `berth login|apply|manifests|devices|campaign|tokens|audit|keygen`: the release manager's and the
 * operator's verbs. Most talk to the control plane's HTTP API; `manifests validate|schema` and
 * `keygen` work on local files. bin/berth.ts passes the verb as argv[0].
 */
import { homedir } from 'node:os';
import { createInterface } from 'node:readline';
import { stringFlag } from './positionals.js';
import { chooseContext, configPath, loadConfigFile, resolveConnection } from './config.js';
import type { Io } from './context.js';
import { CliError } from './errors.js';
import { ownEscapes, terminalSafe } from './terminal-safe.js';
// The light table: declarations only; a verb's module (and the client, the schemas) load when it runs.
import { aliasesOf, ALIASES, entryAt, loadCommand, VERBS } from './verbs.js';
import { GLOBAL_OPTIONS, groupCommand, isLeaf, leafCommand, ParseFailure, refusal, rootCommand, toParsed, type Parsed, type Sink } from './framework.js';

export type { BerthClient } from './client.js';
export type { Io } from './context.js';

const TOKEN_FLAG_HINT =
  'hint: --token is visible in shell history and the process list; prefer BERTH_TOKEN, or `berth login --server URL` with the token on stdin';

export function processIo(): Io {
  return {
    out: (t) => void process.stdout.write(t + '\n'),
    err: (t) => void process.stderr.write(t + '\n'),
    isTTY: process.stdout.isTTY === true,
    env: process.env,
    stdinIsTTY: process.stdin.isTTY === true,
    readStdin: async () => {
      const chunks: Buffer[] = [];
      for await (const c of process.stdin) chunks.push(Buffer.from(c as Buffer));
      return Buffer.concat(chunks).toString('utf8');
    },
    promptSecret: (question) => promptHidden(question),
    ask: (question) => askLine(question),
    now: () => new Date(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    home: homedir(),
  };
}

/**
 * Reads a secret typed at the terminal without echoing it (a token at `berth login`), with
 * @inquirer/password: it replaces a readline whose private output hook was patched to stay silent.
 * On stderr, so stdout stays the command's output; loaded only when a prompt is needed.
 */
async function promptHidden(question: string): Promise<string> {
  const { default: password } = await import('@inquirer/password');
  try {
    return await password({ message: question.replace(/:\s*$/, ''), toggleMask: false }, { output: process.stderr });
  } catch (err) {
    // Ctrl-C at the prompt: nothing typed is kept or saved.
    if (err instanceof Error && err.name === 'ExitPromptError') throw new CliError('no token typed (the prompt was closed)', 'run `berth login --server URL` again, or pipe the token on stdin');
    throw err;
  }
}

/** Reads one line typed at the terminal, echoed (a confirmation: cli/confirm.ts); Ctrl-C or Ctrl-D answers no. */
function askLine(question: string): Promise<string> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    let answered = false;
    rl.on('SIGINT', () => rl.close());
    rl.on('close', () => {
      if (!answered) process.stderr.write('\n');
      resolve('');
    });
    rl.question(question, (answer) => {
      answered = true;
      resolve(answer);
      rl.close();
    });
  });
}

export function usage(): string {
  const lines = ['usage: berth <verb> [subcommand] [options]', ''];
  for (const [name, verb] of Object.entries(VERBS)) {
    if (isLeaf(verb)) {
      if (!verb.hidden) lines.push(`  ${name.padEnd(20)}${verb.about}`);
    }
    else for (const [sub, c] of Object.entries(verb)) lines.push(`  ${`${name} ${sub}`.padEnd(20)}${c.about}`);
  }
  lines.push(
    '',
    `also spelled: ${Object.entries(ALIASES).map(([alias, verb]) => `${alias} (= ${verb})`).join(', ')}`,
    'connection: --server URL (or BERTH_SERVER), token in BERTH_TOKEN or stored by `berth login`, --ca-file PEM (or BERTH_CA_FILE) for a fleet CA',
    'contexts: --context NAME (or BERTH_CONTEXT) picks one of the control planes stored with `berth context add` for a command',
    'common options: --output table|wide|json|yaml|name (json: stable shapes, see cli/README.md), --debug (stack traces)',
  );
  return lines.join('\n');
}

/** The verb table as commander commands; `onParse` learns which verb was asked for, with what. */
export function program(sink: Sink, onParse: (p: Parsed) => void) {
  const root = rootCommand(sink, usage);
  for (const [name, verb] of Object.entries(VERBS)) {
    const aliases = aliasesOf(name);
    root.addCommand(isLeaf(verb) ? leafCommand(name, verb, sink, onParse).aliases(aliases) : groupCommand(name, aliases, verb, sink, onParse), { hidden: isLeaf(verb) && verb.hidden === true });
  }
  return root;
}

export async function run(argv: string[], io: Io): Promise<number> {
  // `berth help VERB [SUB]` is `berth VERB [SUB] --help`.
  if (argv[0] === 'help' && argv.length > 1) return run([...argv.slice(1), '--help'], io);
  const debug = argv.includes('--debug');
  let asked: Parsed | undefined;
  const root = program({ out: io.out, err: io.err }, (p) => (asked = p));
  try {
    try {
      root.parse(argv, { from: 'user' });
    } catch (err) {
      if (!(err instanceof ParseFailure)) throw err;
      const r = refusal(err);
      if (!(r instanceof CliError)) return r.helped;
      // An unknown verb: the list of verbs is the help.
      if (!err.where.parent && err.failure.code === 'commander.unknownCommand') {
        io.err(`berth: ${r.message}\n\n${usage()}`);
        return 2;
      }
      throw r;
    }
    if (!asked) throw new CliError('no verb given', 'run `berth help` for the verbs', 2);
    // Global flags given before the verb count unless the verb's own spelling of them is given too.
    const before = root.opts() as Record<string, string | boolean | undefined>;
    const values = { ...asked.values };
    for (const long of Object.keys(GLOBAL_OPTIONS)) {
      const v = before[root.options.find((o) => o.long === `--${long}`)!.attributeName()];
      if (values[long] === undefined && v !== undefined) values[long] = v;
    }
    const parsed = toParsed(values, asked.positionals);
    if (stringFlag(parsed, 'token') !== undefined) io.err(TOKEN_FLAG_HINT);
    // yaml and name are views of the JSON every verb prints: one place, so no verb can miss them.
    const format = parsed.format;
    const base = io;
    if (format === 'yaml' || format === 'name') {
      const { reshape } = await import('./output.js');
      io = { ...base, out: (t) => base.out(reshape(t, format)) };
    }
    const client = async () => {
      const chosen = chooseContext(await loadConfigFile(configPath(io.env, io.home)), stringFlag(parsed, 'context'), io.env);
      const conn = resolveConnection({ server: stringFlag(parsed, 'server'), token: stringFlag(parsed, 'token'), caFile: stringFlag(parsed, 'ca-file') }, io.env, chosen.stored, chosen.explicit);
      if (!conn.token) throw new CliError('no operator token', 'set BERTH_TOKEN, or run `berth login --server URL` with the token on stdin');
      return (await import('./client.js')).connect(conn.server, conn.token, conn.caFile);
    };
    // Reports, labels and errors come from devices and servers: escaped for the terminal, JSON exact.
    const shown: Io = { ...io, out: (t) => io.out(parsed.output === 'json' ? ownEscapes(t) : terminalSafe(t)), err: (t) => io.err(terminalSafe(t)) };
    const command = await loadCommand(entryAt(asked.path));
    return await command.run({ io: shown, args: parsed, usage: command.usage, client });
  } catch (err) {
    return reportError({ ...io, err: (t) => io.err(terminalSafe(t)) }, err, debug);
  }
}

async function reportError(io: Io, err: unknown, debug: boolean): Promise<number> {
  // A value that does not follow its grammar is a usage error, named by its flag (the grammar is loaded if a verb used it).
  if (!(err instanceof CliError) && err instanceof Error && err.name === 'GrammarError') {
    const [{ GrammarError }, { VALUES_HINT }] = await Promise.all([import('../common/grammar.js'), import('./args.js')]);
    if (err instanceof GrammarError) err = new CliError(err.message, VALUES_HINT, 2);
  }
  if (err instanceof CliError) {
    io.err(`berth: ${err.message}`);
    if (err.hint) io.err(`  ${err.hint}`);
    if (debug && err.stack) io.err(err.stack);
    return err.exitCode;
  }
  const message = err instanceof Error ? err.message : String(err);
  io.err(`berth: unexpected error: ${message}`);
  if (debug && err instanceof Error && err.stack) io.err(err.stack);
  else io.err('  rerun with --debug for the stack trace, and report it');
  return 1;
}

export async function main(argv: string[]): Promise<number> {
  return run(argv, processIo());
}
