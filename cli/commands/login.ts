import { resolve } from 'node:path';
import { stringFlag } from '../args.js';
import { checkContextName, configPath, loadConfigFile, MIGRATED_CONTEXT, normalizeServer, saveConfig } from '../config.js';
import type { Command } from '../context.js';
import { CliError } from '../errors.js';
import { checkToken, readToken } from '../login-check.js';

export const login: Command = {
  usage: 'berth login --server URL [--ca-file PEM] [--context NAME]   (token on stdin, or prompted)',
  about: 'store the control plane URL and an operator token in the config file (0600), in the current context',
  options: {},
  help: 'The token is read from stdin (a pipe), or typed at a prompt without echo; it is checked against the server before it is saved. It goes into the current context (`default` when there is none), or into the one --context names (made if new); every other context is kept.',
  examples: ['berth login --server http://127.0.0.1:7600 < data/admin.token', 'berth login --server https://berth.example.com --ca-file fleet-ca.pem', 'berth login --context staging --server https://berth-staging.example.com < staging.token'],
  async run({ io, args }) {
    const file = configPath(io.env, io.home);
    const config = await loadConfigFile(file);
    const named = stringFlag(args, 'context');
    const target = named !== undefined ? checkContextName(named) : (config.current ?? MIGRATED_CONTEXT);
    const stored = config.contexts[target] ?? {};
    // A context named on purpose is not filled in from the environment (as for every other verb).
    const rawServer = stringFlag(args, 'server') ?? (named === undefined ? io.env.BERTH_SERVER : undefined) ?? stored.server;
    if (!rawServer) throw new CliError('login needs the control plane URL', 'berth login --server http://127.0.0.1:7600 < token-file', 2);
    const server = normalizeServer(rawServer, '--server');
    const token = await readToken(io, server, stringFlag(args, 'token'));
    const caFile = stringFlag(args, 'ca-file') ?? (named === undefined ? io.env.BERTH_CA_FILE : undefined) ?? stored.caFile;
    await checkToken(server, token, caFile);
    await saveConfig(file, { server, token, ...(caFile ? { caFile: resolve(caFile) } : {}) }, target);
    io.out(`logged in to ${server}; saved to ${file} (0600) as context ${target}`);
    return 0;
  },
};
