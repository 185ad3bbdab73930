import { parseListen } from '../common/listen.js';
import { tlsFilesOf } from '../common/serve.js';
import { runService, UsageError, type ServiceSpec } from '../common/service.js';
import { loadCredentials, parseUpstreams, PROXY_FLAGS, withUpstreamTrust } from './config.js';
import { loadTrust } from '../common/tls-trust.js';
import { startRegistryProxy, type ProxyOptions } from './server.js';

export { startRegistryProxy, createProxy, type ProxyOptions, type RunningProxy } from './server.js';
export type { UpstreamConfig, UpstreamCredentials } from './config.js';

/** `berth registry-proxy`: flags → options; a bad flag exits 2 (common/service.ts). */
export const service: ServiceSpec<ProxyOptions> = {
  name: 'registry-proxy',
  flags: PROXY_FLAGS,
  envPrefix: 'PROXY',
  helpNotes: 'upstream credentials: --credentials-file or BERTH_PROXY_CREDENTIALS_<ALIAS>=user:password\nfill a running proxy\'s cache: berth registry-proxy warm IMAGE… (see berth registry-proxy warm --help)',
  async configure(flags) {
    const cacheDir = flags['cache-dir'] as string | undefined;
    if (!cacheDir) throw new UsageError('--cache-dir (or BERTH_PROXY_CACHE_DIR) is required');
    const upstreamValues = (flags.upstream as string[] | undefined) ?? [];
    if (upstreamValues.length === 0) throw new UsageError('at least one --upstream ALIAS=URL (or BERTH_PROXY_UPSTREAM) is required');
    const anonymous = flags.anonymous === true;
    const controlPlane = flags['control-plane'] as string | undefined;
    if (!anonymous && !controlPlane) throw new UsageError('--control-plane URL is required unless --anonymous');
    const upstreams = await withUpstreamTrust(loadCredentials(parseUpstreams(upstreamValues), flags['credentials-file'] as string | undefined, process.env), (flags['upstream-ca-file'] as string[] | undefined) ?? []);
    const caFile = flags['ca-file'] as string | undefined;
    const controlPlaneTrust = caFile ? await loadTrust(caFile) : undefined;
    const maxRaw = flags['cache-max-bytes'] as string | undefined;
    const cacheMaxBytes = maxRaw === undefined ? undefined : Number(maxRaw);
    if (cacheMaxBytes !== undefined && (!Number.isSafeInteger(cacheMaxBytes) || cacheMaxBytes <= 0)) throw new UsageError(`--cache-max-bytes ${JSON.stringify(maxRaw)}: expected a positive integer`);
    const ttl = Number(flags['tag-ttl-seconds']);
    if (!Number.isFinite(ttl) || ttl < 0) throw new UsageError(`--tag-ttl-seconds ${JSON.stringify(flags['tag-ttl-seconds'])}: expected seconds`);
    const listen = String(flags.listen);
    parseListen(listen);
    const tls = tlsFilesOf(flags['tls-cert'] as string | undefined, flags['tls-key'] as string | undefined);
    return { listen, tls, controlPlaneTrust, cacheDir, upstreams, cacheMaxBytes, controlPlane, anonymous, tagTtlMs: ttl * 1000 };
  },
  start: (options, log) => startRegistryProxy({ ...options, log }),
};

export function main(argv: string[]): Promise<number> {
  return runService(argv, service);
}
