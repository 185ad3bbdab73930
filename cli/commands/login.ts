import { resolve } from 'node:path';
import { stringFlag } from '../args.js';
import { connect } from '../client.js';
import { configPath, loadConfig, normalizeServer, saveConfig } from '../config.js';
import type { Command } from '../context.js';
import { CliError } from '../errors.js';
import { ApiError } from '../http.js';

export const login: Command = {
  usage: 'berth login --server URL [--ca-file PEM]   (token on stdin, or prompted)',
  about: 'store the control plane URL and an operator token in the config file (0600)',
  options: {},
  help: 'The token is read from stdin (a pipe), or typed at a prompt without echo; it is checked against the server before it is saved.',
  examples: ['berth login --server http://127.0.0.1:7600 < data/admin.token', 'berth login --server https://berth.example.com --ca-file fleet-ca.pem'],
  async run({ io, args }) {
    const file = configPath(io.env, io.home);
    const stored = await loadConfig(file);
    const rawServer = stringFlag(args, 'server') ?? io.env.BERTH_SERVER ?? stored.server;
    if (!rawServer) throw new CliError('login needs the control plane URL', 'berth login --server http://127.0.0.1:7600 < token-file', 2);
    const server = normalizeServer(rawServer, '--server');
    let token = stringFlag(args, 'token');
    if (!token) token = (io.stdinIsTTY ? await io.promptSecret(`operator token for ${server}: `) : await io.readStdin()).trim();
    if (!token) throw new CliError('no token given', 'pipe it on stdin (berth login --server URL < admin.token) or type it at the prompt', 2);
    if (/\s/.test(token)) throw new CliError('the token contains whitespace', 'give only the token itself, on one line', 2);
    // Check the token before saving it, so a typo is caught here rather than at the next command.
    const caFile = stringFlag(args, 'ca-file') ?? io.env.BERTH_CA_FILE ?? stored.caFile;
    try {
      await (await connect(server, token, caFile)).listManifests();
    } catch (err) {
      // The check is how login works, not what the operator asked for: name the login, keep the why.
      if (err instanceof ApiError) throw new CliError(`login to ${server} failed: ${err.server.message} [${err.server.status} ${err.server.code}]`, err.server.status === 401 ? 'the token is wrong, expired or revoked; nothing was saved' : err.hint);
      if (err instanceof CliError) throw new CliError(err.message.replace(/^listing manifests failed/, `login to ${server} failed`), err.hint, err.exitCode);
      throw err;
    }
    await saveConfig(file, { server, token, ...(caFile ? { caFile: resolve(caFile) } : {}) });
    io.out(`logged in to ${server}; saved to ${file} (0600)`);
    return 0;
  },
};
