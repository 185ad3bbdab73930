import { readFileSync } from 'node:fs';
import { parseFlags, usageOf, type FlagSpec } from '../common/config.js';
import { settledDeltaPlan } from '../common/delta/plan-client.js';
import { createLogger } from '../common/log.js';
import { parseImageRef, proxyRepository } from '../manifests/image-ref.js';
import { loadCredentials, parseUpstreams, PROXY_FLAGS } from './config.js';
import { startRegistryProxy } from './server.js';

export { startRegistryProxy, createProxy, type ProxyOptions, type RunningProxy } from './server.js';
export type { UpstreamConfig, UpstreamCredentials } from './config.js';

const WARM_FLAGS: Record<string, FlagSpec> = {
  proxy: { type: 'string', multiple: false, default: 'http://127.0.0.1:7601', env: 'BERTH_PROXY_URL', about: 'registry proxy URL' },
  'token-file': { type: 'string', multiple: false, env: 'BERTH_PROXY_TOKEN_FILE', about: 'file holding a pull token (or env BERTH_PROXY_TOKEN)' },
  platform: { type: 'string', multiple: false, env: 'BERTH_PROXY_WARM_PLATFORM', about: 'only this os/arch of multi-platform images (default: all)' },
  'delta-from': { type: 'string', multiple: true, about: 'also compute the layer deltas from this image (a release devices run) to each IMAGE and wait for them; repeatable' },
};

/**
 * `berth registry-proxy warm IMAGE…`: asks a running proxy to fill its cache. IMAGE is a user
 * reference (`registry.example.com/acme/app:1.0`, mapped through the proxy's upstreams) or the
 * proxy's own `ALIAS/REPO:TAG`.
 */
async function warmMain(argv: string[]): Promise<number> {
  const { flags, positionals, help } = parseFlags(argv, WARM_FLAGS, 'PROXY');
  if (help || positionals.length === 0) {
    console.log(usageOf('registry-proxy warm IMAGE…', WARM_FLAGS, 'PROXY'));
    return help ? 0 : 2;
  }
  const proxy = String(flags.proxy).replace(/\/+$/, '');
  const token = flags['token-file'] ? readFileSync(String(flags['token-file']), 'utf8').trim() : process.env.BERTH_PROXY_TOKEN;
  const ups = (await (await fetch(`${proxy}/berth/v1/upstreams`)).json()) as { upstreams: { alias: string; url: string }[] };
  const toProxy = (image: string): string => {
    const alias = image.split('/')[0];
    if (ups.upstreams.some((u) => u.alias === alias) && !alias.includes(':')) return image;
    const ref = parseImageRef(image);
    const { repository } = proxyRepository(ref, ups.upstreams);
    return ref.digest ? `${repository}@${ref.digest}` : `${repository}:${ref.tag ?? 'latest'}`;
  };
  const images = positionals.map(toProxy);
  const res = await fetch(`${proxy}/berth/v1/warm`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ images, platform: flags.platform }),
  });
  const text = await res.text();
  if (!res.ok) {
    console.error(`warm failed (${res.status}): ${text}`);
    return 1;
  }
  console.log(text);
  const have = ((flags['delta-from'] as string[] | undefined) ?? []).map(toProxy);
  for (const target of have.length > 0 ? images : []) {
    const plan = await settledDeltaPlan({ proxy, token, request: { target, have, platform: flags.platform as string | undefined } });
    console.log(JSON.stringify({ deltas: { image: target, ...plan } }));
  }
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'warm') return warmMain(argv.slice(1));
  const { flags, help } = parseFlags(argv, PROXY_FLAGS, 'PROXY');
  if (help) {
    console.log(usageOf('registry-proxy', PROXY_FLAGS, 'PROXY') + '\n\nsubcommand: berth registry-proxy warm IMAGE… (prefetch into a running proxy)\nupstream credentials: --credentials-file or BERTH_PROXY_CREDENTIALS_<ALIAS>=user:password');
    return 0;
  }
  if (!flags['cache-dir']) throw new Error('registry-proxy: --cache-dir (or BERTH_PROXY_CACHE_DIR) is required');
  const upstreams = loadCredentials(parseUpstreams((flags.upstream as string[] | undefined) ?? []), flags['credentials-file'] as string | undefined, process.env);
  const maxRaw = flags['cache-max-bytes'] as string | undefined;
  const cacheMaxBytes = maxRaw === undefined ? undefined : Number(maxRaw);
  if (cacheMaxBytes !== undefined && (!Number.isSafeInteger(cacheMaxBytes) || cacheMaxBytes <= 0)) throw new Error(`--cache-max-bytes ${JSON.stringify(maxRaw)}: expected a positive integer`);
  const ttl = Number(flags['tag-ttl-seconds']);
  if (!Number.isFinite(ttl) || ttl < 0) throw new Error(`--tag-ttl-seconds ${JSON.stringify(flags['tag-ttl-seconds'])}: expected seconds`);
  const log = createLogger('registry-proxy');
  const proxy = await startRegistryProxy({
    listen: String(flags.listen),
    cacheDir: String(flags['cache-dir']),
    upstreams,
    cacheMaxBytes,
    controlPlane: flags['control-plane'] as string | undefined,
    anonymous: flags.anonymous === true,
    tagTtlMs: ttl * 1000,
    log,
  });
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info({ signal }, 'shutting down');
      void proxy.close().then(resolve);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}
