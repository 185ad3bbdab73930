/**
 * `berth context add|use|list|rm`: several control planes (staging, production) in the one config
 * file, as kubeconfig keeps clusters; `--context NAME` (or BERTH_CONTEXT) picks one for a single
 * command. Tokens stay in that file (0600, in a 0700 directory), are read from stdin or a prompt
 * (never argv), and are never printed.
 */
import { resolve } from 'node:path';
import { requirePositionals, stringFlag } from '../args.js';
import { checkContextName, configPath, loadConfigFile, normalizeServer, saveConfigFile } from '../config.js';
import { confirmDestructive, yesOption } from '../confirm.js';
import { printJson, type Command } from '../context.js';
import { CliError, usageError } from '../errors.js';
import { renderTable } from '../format.js';
import { checkToken, readToken } from '../login-check.js';

const add: Command = {
  usage: 'berth context add NAME --server URL [--ca-file PEM]   (token on stdin, or prompted)',
  about: 'add a control plane under a name; its token is read from stdin or a prompt, checked, and stored 0600',
  options: {},
  help: 'The token is never taken from the command line: pipe it on stdin or type it at the prompt. The first context added becomes the current one.',
  examples: ['berth context add staging --server https://berth-staging.example.com --ca-file fleet-ca.pem < staging.token', 'berth context add prod --server https://berth.example.com'],
  async run({ io, args, usage }) {
    const [raw] = requirePositionals(args, ['NAME'], usage);
    const name = checkContextName(raw);
    const rawServer = stringFlag(args, 'server');
    if (!rawServer) throw usageError('--server URL is required', usage);
    const server = normalizeServer(rawServer, '--server');
    const path = configPath(io.env, io.home);
    const file = await loadConfigFile(path);
    if (Object.hasOwn(file.contexts, name)) throw new CliError(`context ${name} exists already (${file.contexts[name].server ?? 'no server'})`, `remove it first (berth context rm ${name}), or log in to it again: berth login --context ${name}`, 2);
    if (stringFlag(args, 'token') !== undefined) throw new CliError('context add takes the token on stdin or at the prompt, not from --token', 'pipe it: berth context add NAME --server URL < token-file', 2);
    const caFile = stringFlag(args, 'ca-file');
    const token = await readToken(io, server);
    await checkToken(server, token, caFile);
    file.contexts[name] = { server, token, ...(caFile ? { caFile: resolve(caFile) } : {}) };
    if (!file.current) file.current = name;
    await saveConfigFile(path, file);
    io.out(`context ${name} added (${server}); saved to ${path} (0600)${file.current === name ? '; it is the current context' : `; the current context is still ${file.current} (berth context use ${name})`}`);
    return 0;
  },
};

const use: Command = {
  usage: 'berth context use NAME',
  about: 'make NAME the context every command uses unless --context names another',
  options: {},
  args: ['context'],
  examples: ['berth context use prod', 'berth context use staging'],
  async run({ io, args, usage }) {
    const [name] = requirePositionals(args, ['NAME'], usage);
    const path = configPath(io.env, io.home);
    const file = await loadConfigFile(path);
    if (!Object.hasOwn(file.contexts, name)) throw unknown(name, Object.keys(file.contexts));
    file.current = name;
    await saveConfigFile(path, file);
    io.out(`switched to context ${name} (${file.contexts[name].server ?? 'no server'})`);
    return 0;
  },
};

const list: Command = {
  usage: 'berth context list [--output json]',
  about: 'the stored contexts, the current one marked; never their tokens',
  options: {},
  examples: ['berth context list', 'berth context list -o json'],
  async run({ io, args }) {
    const file = await loadConfigFile(configPath(io.env, io.home));
    const rows = Object.entries(file.contexts)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, c]) => ({ name, current: name === file.current, server: c.server ?? null, caFile: c.caFile ?? null, token: c.token !== undefined }));
    if (args.output === 'json') { printJson(io, rows); return 0; }
    if (!rows.length) { io.out('no contexts yet (berth context add NAME --server URL, or berth login --server URL)'); return 0; }
    io.out(renderTable([
      { header: 'current', get: (r) => (r.current ? '*' : '') },
      { header: 'name', get: (r) => r.name },
      { header: 'server', get: (r) => r.server ?? '-' },
      { header: 'token', get: (r) => (r.token ? 'stored' : 'none') },
      { header: 'ca file', get: (r) => r.caFile ?? '-' },
    ], rows));
    return 0;
  },
};

const rm: Command = {
  usage: 'berth context rm NAME [--yes]',
  about: 'forget a context and delete its stored token',
  options: { ...yesOption },
  args: ['context'],
  examples: ['berth context rm staging', 'berth context rm staging --yes'],
  async run({ io, args, usage }) {
    const [name] = requirePositionals(args, ['NAME'], usage);
    const path = configPath(io.env, io.home);
    const file = await loadConfigFile(path);
    if (!Object.hasOwn(file.contexts, name)) throw unknown(name, Object.keys(file.contexts));
    await confirmDestructive(io, args.values.yes === true, { action: `remove context ${name}`, consequence: `the token stored for ${name} (${file.contexts[name].server ?? 'no server'}) is deleted from ${path}` });
    delete file.contexts[name];
    const wasCurrent = file.current === name;
    if (wasCurrent) delete file.current;
    await saveConfigFile(path, file);
    io.out(`context ${name} removed${wasCurrent ? '; there is no current context now (berth context use NAME)' : ''}`);
    return 0;
  },
};

function unknown(name: string, known: string[]): CliError {
  return new CliError(`no context ${JSON.stringify(name)}`, known.length ? `known contexts: ${known.join(', ')}` : 'add one with `berth context add NAME --server URL`', 2);
}

export const contextCommands = { add, use, list, rm };
