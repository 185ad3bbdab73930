/**
 * Where the CLI finds its control plane and token: flags, else BERTH_SERVER / BERTH_TOKEN, else
 * the current context of the config file (`berth login`, `berth context add|use`). Each of the two
 * is resolved on its own, so a stored token can be used against a --server override (and the
 * other way round). A context named explicitly (`--context`, `BERTH_CONTEXT`) beats the
 * environment: a production token in BERTH_TOKEN must never be sent to the staging server asked for.
 * One file holds every context and its token, 0600 in a 0700 directory, like kubeconfig.
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

/**
 * Pure precedence: flag > environment > config file, for the server and the token separately.
 * `explicitContext`: the stored context was named on purpose (--context, BERTH_CONTEXT), so it
 * beats the environment (flags still win).
 */
export function resolveConnection(flags: { server?: string; token?: string; caFile?: string }, env: NodeJS.ProcessEnv, stored: StoredConfig, explicitContext = false): Connection {
  const pick = (flag: string | undefined, envValue: string | undefined, file: string | undefined): [string, Source] | undefined => {
    if (flag) return [flag, 'flag'];
    if (envValue && !explicitContext) return [envValue, 'env'];
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

/** The file: every context by name, and the one used when none is named. */
export interface ConfigFile {
  current?: string;
  contexts: Record<string, StoredConfig>;
}

/** What an unnamed single-server file (before contexts) becomes: one context of this name. */
export const MIGRATED_CONTEXT = 'default';
const CONTEXT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function checkContextName(name: string): string {
  if (!CONTEXT_NAME.test(name)) throw new CliError(`context name ${JSON.stringify(name)} is not valid`, 'a context name is 1 to 63 letters, digits, . _ -, starting with a letter or digit (staging, prod-eu)', 2);
  return name;
}

function storedOf(o: Record<string, unknown>): StoredConfig {
  return {
    ...(typeof o.server === 'string' ? { server: o.server } : {}),
    ...(typeof o.token === 'string' ? { token: o.token } : {}),
    ...(typeof o.caFile === 'string' ? { caFile: o.caFile } : {}),
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Pure: the file's text as contexts. A file from before contexts (`{server, token, caFile}` at the
 * top) reads as one context `default`, current; it is written in the new form at the next save.
 */
export function parseConfigFile(text: string, path: string): ConfigFile {
  let v: unknown;
  try {
    v = JSON.parse(text);
    if (!isObject(v)) throw new Error('not an object');
  } catch (err) {
    throw new CliError(`config file ${path} is not valid JSON (${(err as Error).message})`, 'fix it or run `berth login` again');
  }
  if (!('contexts' in v)) {
    const single = storedOf(v);
    return Object.keys(single).length ? { current: MIGRATED_CONTEXT, contexts: { [MIGRATED_CONTEXT]: single } } : { contexts: {} };
  }
  if (!isObject(v.contexts)) throw new CliError(`config file ${path}: "contexts" is not an object`, 'fix it or remove the file and log in again');
  const contexts: Record<string, StoredConfig> = {};
  for (const [name, c] of Object.entries(v.contexts)) {
    if (!isObject(c)) throw new CliError(`config file ${path}: context ${JSON.stringify(name)} is not an object`, 'fix it or remove it with `berth context rm NAME`');
    contexts[name] = storedOf(c);
  }
  const current = typeof v.current === 'string' && Object.hasOwn(contexts, v.current) ? v.current : undefined;
  return { ...(current ? { current } : {}), contexts };
}

export async function loadConfigFile(path: string): Promise<ConfigFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { contexts: {} };
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`);
  }
  return parseConfigFile(text, path);
}

/**
 * Pure: which context a command uses, and whether it was named on purpose. `--context` beats
 * BERTH_CONTEXT beats the file's current one; a name that is not in the file is a usage error.
 */
export function chooseContext(file: ConfigFile, flag: string | undefined, env: NodeJS.ProcessEnv): { name?: string; stored: StoredConfig; explicit: boolean } {
  const asked = flag ?? (env.BERTH_CONTEXT || undefined);
  if (asked !== undefined) {
    if (!Object.hasOwn(file.contexts, asked)) {
      const known = Object.keys(file.contexts);
      throw new CliError(`no context ${JSON.stringify(asked)} (from ${flag !== undefined ? '--context' : 'BERTH_CONTEXT'})`, known.length ? `known contexts: ${known.join(', ')} (berth context list)` : 'add one with `berth context add NAME --server URL`', 2);
    }
    return { name: asked, stored: file.contexts[asked], explicit: true };
  }
  if (file.current) return { name: file.current, stored: file.contexts[file.current], explicit: false };
  return { stored: {}, explicit: false };
}

/** The stored server/token/CA of the context named (or the current one); `{}` when there is none. */
export async function loadConfig(path: string, context?: string, env: NodeJS.ProcessEnv = {}): Promise<StoredConfig> {
  return chooseContext(await loadConfigFile(path), context, env).stored;
}

/** Writes the file atomically (temp file + rename), 0600 in a 0700 directory: it holds tokens. */
export async function saveConfigFile(path: string, file: ConfigFile): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  const body = { ...(file.current ? { current: file.current } : {}), contexts: file.contexts };
  await writeFile(tmp, JSON.stringify(body, null, 2) + '\n', { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
}

/**
 * Stores `config` as the context `name` (default: the current one, else `default`), keeping every
 * other context; the first context stored becomes the current one. Returns the context's name.
 */
export async function saveConfig(path: string, config: StoredConfig, name?: string): Promise<string> {
  const file = await loadConfigFile(path);
  const target = name ?? file.current ?? MIGRATED_CONTEXT;
  file.contexts[target] = config;
  if (!file.current) file.current = target;
  await saveConfigFile(path, file);
  return target;
}
