/**
 * Where the CLI finds its control plane and token: flags, else BERTH_SERVER / BERTH_TOKEN, else
 * the config file `berth login` wrote. Each of the two is resolved on its own, so a config file's
 * token can be used against a --server override (and the other way round).
 */
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CliError } from './errors.js';

export interface StoredConfig {
  server?: string;
  token?: string;
  /** The fleet's CA (PEM), trusted besides the public roots for an https: server. */
  caFile?: string;
}

export type Source = 'flag' | 'env' | 'config';

export interface Connection {
  server: string;
  token?: string;
  serverFrom: Source;
  tokenFrom?: Source;
  caFile?: string;
}

export function configPath(env: NodeJS.ProcessEnv, home: string): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith('/') ? env.XDG_CONFIG_HOME : join(home, '.config');
  return join(base, 'berth', 'config.json');
}

export function normalizeServer(url: string, from: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new CliError(`server URL ${JSON.stringify(url)} (from ${from}) is not a URL`, 'write it like http://127.0.0.1:7600', 2);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new CliError(`server URL ${JSON.stringify(url)} (from ${from}) must be http or https`, undefined, 2);
  return u.toString().replace(/\/+$/, '');
}

const SOURCE_NAME: Record<Source, string> = { flag: '--server', env: 'BERTH_SERVER', config: 'the config file' };

/** Pure precedence: flag > environment > config file, for the server and the token separately. */
export function resolveConnection(flags: { server?: string; token?: string; caFile?: string }, env: NodeJS.ProcessEnv, stored: StoredConfig): Connection {
  const pick = (flag: string | undefined, envValue: string | undefined, file: string | undefined): [string, Source] | undefined => {
    if (flag) return [flag, 'flag'];
    if (envValue) return [envValue, 'env'];
    if (file) return [file, 'config'];
    return undefined;
  };
  const server = pick(flags.server, env.BERTH_SERVER, stored.server);
  if (!server) {
    throw new CliError('no control plane configured', 'pass --server URL, set BERTH_SERVER, or run `berth login --server URL` (token on stdin)');
  }
  const token = pick(flags.token, env.BERTH_TOKEN, stored.token);
  const caFile = pick(flags.caFile, env.BERTH_CA_FILE, stored.caFile);
  return {
    ...(caFile ? { caFile: caFile[0] } : {}),
    server: normalizeServer(server[0], SOURCE_NAME[server[1]]),
    serverFrom: server[1],
    token: token?.[0],
    tokenFrom: token?.[1],
  };
}

export async function loadConfig(path: string): Promise<StoredConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    const o = v as Record<string, unknown>;
    return {
      server: typeof o.server === 'string' ? o.server : undefined,
      token: typeof o.token === 'string' ? o.token : undefined,
      ...(typeof o.caFile === 'string' ? { caFile: o.caFile } : {}),
    };
  } catch (err) {
    throw new CliError(`config file ${path} is not valid JSON (${(err as Error).message})`, 'fix it or run `berth login` again');
  }
}

/** Writes the config atomically (temp file + rename), 0600 in a 0700 directory: it holds a token. */
export async function saveConfig(path: string, config: StoredConfig): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}
