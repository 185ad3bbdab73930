import { loadTrust, type HttpsTrust } from '../common/tls-trust.js';
import { readFileSync, statSync } from 'node:fs';
import { upstreamHost } from '../manifests/image-ref.js';
import type { FlagSpec } from '../common/config.js';
import { isValidAlias } from './names.js';

export type UpstreamCredentials = { username: string; password: string } | { token: string };

export interface UpstreamConfig {
  alias: string;
  /** Base URL, e.g. `https://registry.example.com` (no `/v2`). */
  url: string;
  credentials?: UpstreamCredentials;
  /** A private CA this upstream's certificate chains to (`--upstream-ca-file`). */
  trust?: HttpsTrust;
}

export const PROXY_FLAGS: Record<string, FlagSpec> = {
  listen: { type: 'string', multiple: false, default: '127.0.0.1:7601', about: 'address to listen on (HOST:PORT)' },
  'tls-cert': { type: 'string', multiple: false, about: 'serve HTTPS: certificate PEM file, with its chain (SIGHUP reloads it)' },
  'tls-key': { type: 'string', multiple: false, about: 'serve HTTPS: private key PEM file, mode 0600 or the proxy refuses to start' },
  'cache-dir': { type: 'string', multiple: false, about: 'directory of the content-addressed cache (required)' },
  upstream: { type: 'string', multiple: true, about: 'upstream registry ALIAS=URL, repeatable (env: comma-separated)' },
  'cache-max-bytes': { type: 'string', multiple: false, about: 'evict least-recently-used blobs above this many bytes' },
  'control-plane': { type: 'string', multiple: false, about: 'control plane URL whose JWKS signs pull tokens' },
  anonymous: { type: 'boolean', multiple: false, about: 'serve without pull tokens (trusted LAN mirror only)' },
  'credentials-file': { type: 'string', multiple: false, about: 'JSON {ALIAS: {username, password} | {token}}, mode 0600' },
  'ca-file': { type: 'string', multiple: false, about: "PEM file of the fleet's CA, for an https: --control-plane (JWKS, revocations)" },
  'upstream-ca-file': { type: 'string', multiple: true, about: 'PEM CA trusted for upstreams besides the public roots: FILE (every upstream) or ALIAS=FILE, repeatable' },
  'tag-ttl-seconds': { type: 'string', multiple: false, default: '30', about: 'seconds before a tag is re-resolved upstream' },
};

/** Parses `ALIAS=URL` values; an alias is one lowercase repository component. */
export function parseUpstreams(values: string[]): UpstreamConfig[] {
  const out: UpstreamConfig[] = [];
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new Error(`--upstream ${JSON.stringify(v)}: expected ALIAS=URL`);
    const alias = v.slice(0, eq);
    const url = v.slice(eq + 1).replace(/\/+$/, '');
    if (!isValidAlias(alias)) throw new Error(`--upstream ${JSON.stringify(v)}: alias must be lowercase letters, digits and separators`);
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new Error(`--upstream ${JSON.stringify(v)}: ${JSON.stringify(url)} is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error(`--upstream ${JSON.stringify(v)}: URL must be http or https`);
    if (parsed.username || parsed.password) throw new Error(`--upstream ${alias}: credentials do not belong in the URL; use --credentials-file or BERTH_PROXY_CREDENTIALS_${envAlias(alias)}`);
    if (out.some((u) => u.alias === alias)) throw new Error(`--upstream: alias ${alias} given twice`);
    out.push({ alias, url });
  }
  return out;
}

export function envAlias(alias: string): string {
  return alias.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

function credentialsOf(value: unknown, where: string): UpstreamCredentials {
  const v = value as Record<string, unknown> | null;
  if (v && typeof v.token === 'string' && v.token) return { token: v.token };
  if (v && typeof v.username === 'string' && typeof v.password === 'string') return { username: v.username, password: v.password };
  throw new Error(`${where}: expected {username, password} or {token}`);
}

/**
 * Upstream credentials from a 0600 JSON file and from `BERTH_PROXY_CREDENTIALS_<ALIAS>=user:password`
 * (the environment wins). Never from argv: command lines are world-readable in /proc.
 */
export function loadCredentials(upstreams: UpstreamConfig[], file: string | undefined, env: NodeJS.ProcessEnv): UpstreamConfig[] {
  let fromFile: Record<string, unknown> = {};
  if (file) {
    const mode = statSync(file).mode;
    if ((mode & 0o077) !== 0) throw new Error(`credentials file ${file} has mode ${(mode & 0o777).toString(8)}; it must be 0600 (chmod 600 ${file})`);
    try {
      fromFile = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new Error(`credentials file ${file}: not JSON (${(err as Error).message})`);
    }
    for (const alias of Object.keys(fromFile)) {
      if (!upstreams.some((u) => u.alias === alias)) throw new Error(`credentials file ${file}: ${alias} is not an --upstream alias`);
    }
  }
  return upstreams.map((u) => {
    const envValue = env[`BERTH_PROXY_CREDENTIALS_${envAlias(u.alias)}`];
    if (envValue) {
      const colon = envValue.indexOf(':');
      if (colon <= 0) throw new Error(`BERTH_PROXY_CREDENTIALS_${envAlias(u.alias)}: expected user:password`);
      return { ...u, credentials: { username: envValue.slice(0, colon), password: envValue.slice(colon + 1) } };
    }
    if (fromFile[u.alias] !== undefined) return { ...u, credentials: credentialsOf(fromFile[u.alias], `credentials file ${file}: ${u.alias}`) };
    return u;
  });
}

/** Docker Hub keeps official images under `library/`; a one-part name means one of them. */
export function upstreamRepository(up: UpstreamConfig, repository: string): string {
  return upstreamHost(up.url) === 'docker.io' && !repository.includes('/') ? `library/${repository}` : repository;
}

/**
 * `--upstream-ca-file FILE` (every upstream) or `ALIAS=FILE` (one), repeatable: the upstreams with
 * their trust. Certificates are always verified; a CA only adds to the public roots.
 */
export async function withUpstreamTrust(upstreams: UpstreamConfig[], values: string[]): Promise<UpstreamConfig[]> {
  let all: string | undefined;
  const byAlias = new Map<string, string>();
  for (const v of values) {
    const m = /^([a-z0-9][a-z0-9._-]*)=(.+)$/.exec(v);
    if (m && upstreams.some((u) => u.alias === m[1])) byAlias.set(m[1], m[2]);
    else if (m && !v.includes('/')) throw new Error(`--upstream-ca-file ${JSON.stringify(v)}: no upstream is called ${JSON.stringify(m[1])}`);
    else all = v;
  }
  const out: UpstreamConfig[] = [];
  for (const u of upstreams) {
    const file = byAlias.get(u.alias) ?? all;
    out.push(file ? { ...u, trust: await loadTrust(file, '--upstream-ca-file') } : u);
  }
  return out;
}
