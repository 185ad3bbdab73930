/**
 * How `berth login` and `berth context add` take a token: from stdin (a pipe) or typed at a prompt
 * without echo, never from argv; checked against the server before anything is saved, so a typo
 * or a revoked token is caught here rather than at the next command.
 */
import { connect } from './client.js';
import type { Io } from './context.js';
import { CliError } from './errors.js';
import { ApiError } from './http.js';

export async function readToken(io: Io, server: string, given?: string): Promise<string> {
  const token = (given ?? (io.stdinIsTTY ? await io.promptSecret(`operator token for ${server}: `) : await io.readStdin())).trim();
  if (!token) throw new CliError('no token given', 'pipe it on stdin (… < admin.token) or type it at the prompt', 2);
  if (/\s/.test(token)) throw new CliError('the token contains whitespace', 'give only the token itself, on one line', 2);
  return token;
}

/** Throws `login to SERVER failed: why` unless the server accepts the token. */
export async function checkToken(server: string, token: string, caFile: string | undefined): Promise<void> {
  try {
    await (await connect(server, token, caFile)).listManifests();
  } catch (err) {
    // The check is how login works, not what the operator asked for: name the login, keep the why.
    if (err instanceof ApiError) throw new CliError(`login to ${server} failed: ${err.server.message} [${err.server.status} ${err.server.code}]`, err.server.status === 401 ? 'the token is wrong, expired or revoked; nothing was saved' : err.hint);
    if (err instanceof CliError) throw new CliError(err.message.replace(/^listing manifests failed/, `login to ${server} failed`), err.hint, err.exitCode);
    throw err;
  }
}
