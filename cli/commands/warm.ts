import { readFile } from 'node:fs/promises';
import { settledDeltaPlan } from '../../common/delta/plan-client.js';
import { httpRequest, type HttpAnswer } from '../../common/http-client.js';
import { describeTlsError, loadTrust, type HttpsTrust } from '../../common/tls-trust.js';
import { parseImageRef, proxyRepository, type Upstream } from '../../manifests/image-ref.js';
import { proxyRoutes } from '../../protocol/registry-proxy.js';
import { requirePositionals, stringFlag } from '../args.js';
import { parseAnswer } from '../client.js';
import type { Command } from '../context.js';
import { CliError } from '../errors.js';

/** Where `berth registry-proxy` listens unless told otherwise. */
const DEFAULT_PROXY = 'http://127.0.0.1:7601';
const USAGE = 'berth registry-proxy warm IMAGE… [--proxy URL] [--ca-file FILE] [--token-file FILE] [--platform os/arch] [--delta-from IMAGE]…';

/**
 * The proxy's name for `image`: its own `ALIAS/REPO:TAG` stays as it is; a user reference
 * (`registry.example.com/acme/app:1.0`) is mapped through the proxy's upstreams.
 */
export function proxyImageOf(image: string, upstreams: Upstream[]): string {
  const alias = image.split('/')[0];
  if (upstreams.some((u) => u.alias === alias) && !alias.includes(':')) return image;
  let ref;
  let repository;
  try {
    ref = parseImageRef(image);
    repository = proxyRepository(ref, upstreams).repository;
  } catch (err) {
    throw new CliError(`${image}: ${(err as Error).message}`, `name an upstream of the proxy (${upstreams.map((u) => u.alias).join(', ') || 'none'}) or a registry it mirrors`, 2);
  }
  return ref.digest ? `${repository}@${ref.digest}` : `${repository}:${ref.tag ?? 'latest'}`;
}

async function jsonOf(res: HttpAnswer, proxy: string): Promise<unknown> {
  try {
    return await res.json();
  } catch {
    throw new CliError(`warm: ${proxy} answered ${res.status} with something that is not JSON`, 'is --proxy really a Berth registry proxy?');
  }
}

async function call(what: string, proxy: string, path: string, init: { method?: string; headers?: Record<string, string>; body?: string; trust?: HttpsTrust } = {}): Promise<HttpAnswer> {
  try {
    return await httpRequest(`${proxy}${path}`, { ...init, signal: AbortSignal.timeout(30 * 60_000) });
  } catch (err) {
    const tls = describeTlsError(err, proxy, init.trust?.caFile);
    if (tls) throw new CliError(`${what}: ${tls}`, 'pass the CA that signed the proxy\'s certificate with --ca-file or BERTH_CA_FILE');
    throw new CliError(`${what}: cannot reach the registry proxy at ${proxy} (${(err as Error).message})`, 'is it running? check --proxy / BERTH_PROXY_URL');
  }
}

/**
 * `berth registry-proxy warm IMAGE…`: asks a running proxy to fetch every blob of these images
 * into its cache (ahead of a campaign). Same environment twins as before the verb moved here
 * from registry-proxy/: BERTH_PROXY_URL, BERTH_PROXY_TOKEN_FILE or BERTH_PROXY_TOKEN,
 * BERTH_PROXY_WARM_PLATFORM.
 */
export const warm: Command = {
  usage: USAGE,
  about: "fill a running registry proxy's cache ahead of a campaign (a pull token from --token-file or BERTH_PROXY_TOKEN)",
  options: {
    proxy: { type: 'string', value: 'URL', default: `BERTH_PROXY_URL, else ${DEFAULT_PROXY}`, description: 'the registry proxy' },
    'token-file': { type: 'string', value: 'FILE', complete: 'file', description: 'a pull token (else BERTH_PROXY_TOKEN_FILE, else BERTH_PROXY_TOKEN)' },
    platform: { type: 'string', value: 'OS/ARCH', description: 'the platform to fetch (else BERTH_PROXY_WARM_PLATFORM)' },
    'delta-from': { type: 'string', multiple: true, value: 'IMAGE', description: 'also compute the layer deltas from this release to each IMAGE, and wait for them' },
  },
  examples: ['berth registry-proxy warm registry.example.com/acme/app:2.0', 'berth registry-proxy warm registry.example.com/acme/app:2.0 --delta-from registry.example.com/acme/app:1.0 --platform linux/arm64'],
  async run({ io, args }) {
    const images = requirePositionals(args, ['IMAGE'], USAGE, true);
    const proxy = (stringFlag(args, 'proxy') ?? io.env.BERTH_PROXY_URL ?? DEFAULT_PROXY).replace(/\/+$/, '');
    const tokenFile = stringFlag(args, 'token-file') ?? io.env.BERTH_PROXY_TOKEN_FILE;
    const token = tokenFile ? (await readFile(tokenFile, 'utf8')).trim() : io.env.BERTH_PROXY_TOKEN;
    const platform = stringFlag(args, 'platform') ?? io.env.BERTH_PROXY_WARM_PLATFORM;
    const caFile = stringFlag(args, 'ca-file') ?? io.env.BERTH_CA_FILE;
    const trust = caFile ? await loadTrust(caFile) : undefined;
    const listed = await call('warm', proxy, proxyRoutes.upstreams.path, { trust });
    if (!listed.ok) throw new CliError(`warm: ${proxy}/berth/v1/upstreams answered ${listed.status}`, 'is --proxy really a Berth registry proxy?');
    const { upstreams } = parseAnswer('warm', proxyRoutes.upstreams, listed.status, await jsonOf(listed, proxy));
    const targets = images.map((image) => proxyImageOf(image, upstreams));
    // --delta-from: a release devices run; the deltas from it to each IMAGE are computed and waited for.
    const have = ((args.values['delta-from'] as string[] | undefined) ?? []).map((image) => proxyImageOf(image, upstreams));
    const body = JSON.stringify({ images: targets, platform });
    const res = await call('warm', proxy, proxyRoutes.warm.path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body,
      trust,
    });
    if (!res.ok) throw new CliError(`warm failed (${res.status}): ${await res.text()}`);
    io.out(JSON.stringify(parseAnswer('warm', proxyRoutes.warm, res.status, await jsonOf(res, proxy))));
    for (const target of have.length > 0 ? targets : []) {
      const plan = await settledDeltaPlan({ proxy, token, trust, request: { target, have, platform } });
      io.out(JSON.stringify({ deltas: { image: target, ...plan } }));
    }
    return 0;
  },
};
