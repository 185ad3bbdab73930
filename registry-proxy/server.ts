import type { Server } from 'node:http';
import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import { Hono, type Context } from 'hono';
import { chunkSizeFor, planBlob, sendBlobFile } from '../common/blob-http.js';
import { createLogger, type Logger } from '../common/log.js';
import { createServiceRegistry } from '../common/metrics.js';
import { MEDIA } from '../common/oci.js';
import { requestId } from '../common/request-id.js';
import { upstreamHost } from '../manifests/image-ref.js';
import { answerCheckFromEnv } from '../protocol/answer-check.js';
import { registryProxyApi, warmBody } from '../protocol/registry-proxy.js';
import { authorize, reachOf, type Grant, type Reach, type Want } from './access.js';
import { loadTls, serveHttp, type Served, type TlsFiles } from '../common/serve.js';
import { trustingFetch, type HttpsTrust } from '../common/tls-trust.js';
import type { UpstreamConfig } from './config.js';
import { OciError, ociErrorBody } from './errors.js';
import type { DeltaCacheOptions } from './delta/cache.js';
import { pinnedBlobs } from './delta/images.js';
import { mountDeltaRoutes } from './delta/routes.js';
import { BlobFetcher, DEFAULT_FETCH_OPTIONS, type FetchOptions } from './fetcher.js';
import { ManifestService, targetOf } from './manifests.js';
import { createProxyMetrics, type ProxyMetrics } from './metrics.js';
import { parseV2Path, type V2Route } from './names.js';
import { PullTokenVerifier } from './pull-auth.js';
import { sendWhileFetching } from './send.js';
import { ProxyCache } from './cache.js';
import { DEFAULT_UPSTREAM_OPTIONS, UpstreamClient, UpstreamUnreachable } from './upstream.js';
import { inPool, parseProxyImage, selectChildren } from './warm.js';
import { originFormOnly, rawTarget, warmBodyLimit } from './request-guards.js';

export interface ProxyOptions {
  /** HOST:PORT; port 0 picks a free one (tests). Default 127.0.0.1:0. */
  listen?: string;
  /** Serve HTTPS from these PEM files (the key 0600); SIGHUP reloads them. */
  tls?: TlsFiles;
  cacheDir: string;
  upstreams: UpstreamConfig[];
  cacheMaxBytes?: number;
  /** Control plane base URL: its JWKS verifies pull tokens, its token endpoint is the realm. */
  controlPlane?: string;
  /** The fleet's CA for an https: control plane (`--ca-file`). */
  controlPlaneTrust?: HttpsTrust;
  anonymous?: boolean;
  tagTtlMs?: number;
  /** How long a partial download no fetch is writing is kept for a resume (default 24 h). */
  partialTtlMs?: number;
  jwksCooldownMs?: number;
  /** How often the control plane's revocation list is read (default 2 s). */
  revocationPollMs?: number;
  /** Bytes of blob reads in flight across all clients; sets the read size under load. */
  sendBudgetBytes?: number;
  upstream?: Partial<typeof DEFAULT_UPSTREAM_OPTIONS>;
  fetch?: Partial<FetchOptions>;
  /** Layer deltas: zstd level, patch cap (registry-proxy/DELTA.md). */
  delta?: DeltaCacheOptions;
  log?: Logger;
}

export interface RunningProxy {
  url: string;
  close(): Promise<void>;
  log: Logger;
  metrics: ProxyMetrics;
  cache: ProxyCache;
}

type Env = { Bindings: HttpBindings; Variables: { log: Logger; requestId: string; grant: Grant; sentStatus: number } };

const KNOWN_ROUTES = new Set(['/healthz', '/metrics', '/berth/v1/upstreams', '/berth/v1/warm', '/berth/v1/deltas/plan']);
const API_HEADER = { 'Docker-Distribution-API-Version': 'registry/2.0' };
const MANIFEST_TYPES: string[] = [MEDIA.ociManifest, MEDIA.ociIndex, MEDIA.dockerManifest, MEDIA.dockerList];

/**
 * Whether a client's Accept admits a manifest of `mediaType`. Clients that name no manifest type
 * at all (curl, Accept: application/json) get what is stored; clients that list types get one of them.
 */
export function acceptsManifest(accept: string | undefined, mediaType: string): boolean {
  if (!accept) return true;
  const types = accept.split(',').map((t) => t.split(';')[0].trim().toLowerCase());
  if (types.includes(mediaType) || types.includes('*/*') || types.includes('application/*')) return true;
  return !types.some((t) => MANIFEST_TYPES.includes(t));
}

/** A bounded memo of digest-list expansions: manifests are immutable, so entries never go stale. */
class ReachCache {
  private readonly memo = new Map<string, Promise<Reach>>();
  constructor(private readonly compute: (name: string, digests: string[]) => Promise<Reach>) {}
  get(name: string, digests: string[]): Promise<Reach> {
    const key = `${name}\n${digests.join(',')}`;
    let p = this.memo.get(key);
    if (!p) {
      p = this.compute(name, digests);
      p.catch(() => this.memo.delete(key));
      if (this.memo.size >= 1000) this.memo.delete(this.memo.keys().next().value as string);
      this.memo.set(key, p);
    }
    return p;
  }
}

function errorResponse(err: OciError, challenge?: string): Response {
  const headers: Record<string, string> = { 'Content-Type': 'application/json', ...API_HEADER };
  if (err.code === 'UNAUTHORIZED' && challenge) headers['WWW-Authenticate'] = challenge;
  return new Response(ociErrorBody(err), { status: err.status, headers });
}

/** Builds the proxy's parts and its HTTP app; no socket yet (startRegistryProxy listens). */
export async function createProxy(opts: ProxyOptions) {
  const log = opts.log ?? createLogger('registry-proxy');
  if (!opts.anonymous && !opts.controlPlane) throw new Error('registry-proxy: --control-plane URL is required unless --anonymous');
  if (opts.upstreams.length === 0) throw new Error('registry-proxy: at least one --upstream ALIAS=URL is required');
  const metrics = createProxyMetrics(createServiceRegistry());
  const cache = new ProxyCache(opts.cacheDir, opts.cacheMaxBytes, log, opts.partialTtlMs);
  await cache.open();
  metrics.gauge('berth_proxy_cache_size_bytes', () => cache.sizeBytes);
  metrics.gauge('berth_proxy_cache_blobs', () => cache.blobCount);
  const upstreams = new Map(opts.upstreams.map((u) => [u.alias, new UpstreamClient(u, { ...DEFAULT_UPSTREAM_OPTIONS, ...opts.upstream, log })]));
  const fetcher = new BlobFetcher(cache, metrics, log, { ...DEFAULT_FETCH_OPTIONS, ...opts.fetch });
  const manifests = new ManifestService(cache, upstreams, metrics, log, opts.tagTtlMs ?? 30_000);
  const verifier = opts.anonymous ? null : new PullTokenVerifier(opts.controlPlane as string, { cooldownMs: opts.jwksCooldownMs, revocationPollMs: opts.revocationPollMs, log, fetch: trustingFetch(opts.controlPlaneTrust) });
  const reach = new ReachCache((name, digests) => reachOf(name, digests, (n, d) => manifests.parsed(n, d)));

  if (opts.anonymous) {
    log.warn({ anonymous: true }, 'ANONYMOUS MODE: pull tokens are NOT checked; anyone who reaches this port can pull every mirrored image. Use only on a trusted LAN.');
  }

  // Blob responses being written right now: their read size shrinks as their number grows.
  let sending = 0;
  const chunkSize = (): number => chunkSizeFor(sending, opts.sendBudgetBytes);

  const app = new Hono<Env>();

  app.use('*', requestId(log));
  app.use('*', async (c, next) => {
    const t0 = performance.now();
    await next();
    const status = c.get('sentStatus') ?? c.res.status;
    // A fixed label set: a path of the client's choosing must not become a metrics series.
    const route = c.req.path.startsWith('/v2') ? (/\/(manifests|blobs|tags)\//.exec(c.req.path)?.[1] ?? 'base') : (KNOWN_ROUTES.has(c.req.path) ? c.req.path : 'other');
    metrics.inc('berth_proxy_requests_total', { route, status: String(status) });
    c.var.log.info({ method: c.req.method, path: rawTarget(c.env, c.req.url), status, ms: Math.round(performance.now() - t0) }, 'request');
  });
  app.use('*', originFormOnly());
  app.use('/berth/v1/warm', warmBodyLimit());

  // Under test (BERTH_CHECK_ANSWERS), the /berth/v1 answers are held to protocol/registry-proxy.ts.
  const answerCheck = answerCheckFromEnv(registryProxyApi, process.env, (message) => ({ errors: [{ code: 'CONTRACT_VIOLATION', message }] }));
  if (answerCheck) app.use('/berth/v1/*', answerCheck);

  app.onError((err, c) => {
    const challenge = verifier?.challenge(c.get('grant') ? undefined : scopeName(c));
    if (err instanceof OciError) {
      if (err.status >= 500) c.get('log')?.warn({ code: err.code, err: err.message }, 'request failed');
      return errorResponse(err, challenge);
    }
    if (err instanceof UpstreamUnreachable) return errorResponse(new OciError('UPSTREAM_UNAVAILABLE', err.message), challenge);
    c.get('log')?.error({ err: (err as Error).message, stack: (err as Error).stack }, 'unexpected error');
    return new Response(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'internal error; see the proxy log for request ' + c.get('requestId') }] }), { status: 500, headers: { 'Content-Type': 'application/json' } });
  });

  const rawPath = (c: Context<Env>): string => rawTarget(c.env, c.req.url);

  function scopeName(c: Context<Env>): string | undefined {
    try {
      const r = parseV2Path(rawPath(c));
      return r && r.kind !== 'base' ? r.name : undefined;
    } catch {
      return undefined;
    }
  }

  async function grantOf(c: Context<Env>): Promise<Grant> {
    if (!verifier) return { kind: 'anonymous' };
    try {
      const grant = await verifier.verify(c.req.header('authorization'));
      c.set('grant', grant);
      return grant;
    } catch (err) {
      metrics.inc('berth_proxy_auth_failures_total', { reason: 'token' });
      throw err;
    }
  }

  async function check(grant: Grant, want: Want): Promise<void> {
    try {
      await authorize(grant, want, (name, digests) => reach.get(name, digests));
    } catch (err) {
      if (err instanceof OciError && err.code === 'DENIED') metrics.inc('berth_proxy_auth_failures_total', { reason: 'scope' });
      throw err;
    }
  }

  const deltas = await mountDeltaRoutes(app, {
    cacheDir: opts.cacheDir,
    log,
    options: opts.delta,
    manifest: (name, reference, byDigest) => manifests.get(name, reference, byDigest),
    blob: pinnedBlobs(cache, async (name, digest, l) => {
      const target = targetOf(upstreams, name);
      const f = fetcher.start(target.client, target.repository, digest, l);
      await f.done;
      if (f.error) throw f.error;
    }),
    authorize: async (c, want) => check(await grantOf(c), want),
  });

  app.get('/healthz', (c) => c.json({ ok: true, cache: { bytes: cache.sizeBytes, blobs: cache.blobCount }, inflight: fetcher.active, anonymous: !!opts.anonymous }));
  app.get('/metrics', async (c) => {
    const { body, contentType } = await metrics.render();
    return c.body(body, 200, { 'Content-Type': contentType });
  });
  app.get('/berth/v1/upstreams', (c) => c.json({ upstreams: opts.upstreams.map((u) => ({ alias: u.alias, url: u.url, host: upstreamHost(u.url) })) }));

  app.post('/berth/v1/warm', async (c) => {
    const grant = await grantOf(c);
    const parsed = warmBody.safeParse(await c.req.json().catch(() => null));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue.path.length ? `${issue.path.map(String).join('.')}: ` : '';
      throw new OciError('MANIFEST_INVALID', `warm: ${where}${issue.message}; expected {"images": ["ALIAS/REPO:TAG" | "ALIAS/REPO@sha256:…"], "platform"?: "linux/amd64"}`, undefined, 400);
    }
    const { images: wanted, platform } = parsed.data;
    const results = [];
    for (const image of wanted) {
      const want = parseProxyImage(image);
      await check(grant, { kind: 'manifest', ...want });
      const top = await manifests.get(want.name, want.reference, want.byDigest);
      const parsed = await manifests.parsed(want.name, top.digest);
      const images = parsed.kind === 'index' ? selectChildren(parsed.manifests, platform).map((d) => d.digest) : [top.digest];
      const blobs = new Map<string, number>();
      for (const d of images) {
        const m = await manifests.parsed(want.name, d);
        if (m.kind !== 'image') continue;
        for (const b of [m.config, ...m.layers]) blobs.set(b.digest, b.size);
      }
      const target = targetOf(upstreams, want.name);
      let fetched = 0;
      await inPool([...blobs.keys()], 3, async (digest) => {
        if (cache.lookup(digest) !== undefined) return;
        const f = fetcher.start(target.client, target.repository, digest, c.get('log'));
        await f.done;
        if (f.error) throw f.error;
        fetched++;
      });
      results.push({ image, digest: top.digest, manifests: images.length, blobs: blobs.size, fetched, bytes: [...blobs.values()].reduce((a, b) => a + b, 0) });
      c.get('log').info({ image, digest: top.digest, blobs: blobs.size, fetched }, 'warmed');
    }
    return c.json({ warmed: results });
  });

  app.on(['GET', 'HEAD'], '/v2/*', async (c) => v2(c));
  app.on(['GET', 'HEAD'], '/v2', async (c) => v2(c));
  app.all('/v2/*', () => { throw new OciError('UNSUPPORTED', 'this proxy is read-only: push, delete and uploads are not supported'); });

  async function v2(c: Context<Env>): Promise<Response> {
    const route = parseV2Path(rawPath(c)) as V2Route;
    const grant = await grantOf(c);
    switch (route.kind) {
      case 'base':
        return c.json({}, 200, API_HEADER);
      case 'manifest':
        return manifest(c, grant, route);
      case 'blob':
        return blob(c, grant, route);
      case 'tags':
        return tags(c, grant, route);
    }
  }

  async function manifest(c: Context<Env>, grant: Grant, route: Extract<V2Route, { kind: 'manifest' }>): Promise<Response> {
    await check(grant, { kind: 'manifest', name: route.name, reference: route.reference, byDigest: route.byDigest });
    const m = await manifests.get(route.name, route.reference, route.byDigest);
    if (!acceptsManifest(c.req.header('accept'), m.mediaType)) {
      throw new OciError('MANIFEST_UNKNOWN', `manifest ${route.name}:${route.reference} is ${m.mediaType}, which the request's Accept header does not list`);
    }
    const headers: Record<string, string> = {
      ...API_HEADER,
      'Content-Type': m.mediaType,
      'Content-Length': String(m.bytes.length),
      'Docker-Content-Digest': m.digest,
      ETag: `"${m.digest}"`,
    };
    if (m.stale) headers['X-Berth-Stale'] = 'true';
    metrics.inc('berth_proxy_served_bytes_total', { kind: 'manifest' }, c.req.method === 'HEAD' ? 0 : m.bytes.length);
    return new Response(c.req.method === 'HEAD' ? null : new Uint8Array(m.bytes), { status: 200, headers });
  }

  async function tags(c: Context<Env>, grant: Grant, route: Extract<V2Route, { kind: 'tags' }>): Promise<Response> {
    await check(grant, { kind: 'tags', name: route.name });
    const target = targetOf(upstreams, route.name);
    const query = new URL(c.req.url).search;
    const res = await target.client.request(`${target.repository}/tags/list${query}`, { scope: `repository:${target.repository}:pull`, signal: AbortSignal.timeout(60_000) });
    if (res.status === 404) {
      await res.cancel();
      throw new OciError('NAME_UNKNOWN', `repository ${route.name} is not on its upstream`);
    }
    if (!res.ok) {
      await res.cancel();
      throw new OciError('UPSTREAM_ERROR', `upstream answered ${res.status} for the tag list of ${route.name}`);
    }
    const body = (await res.json()) as { tags?: string[] };
    return c.json({ name: route.name, tags: body.tags ?? [] }, 200, API_HEADER);
  }

  async function blob(c: Context<Env>, grant: Grant, route: Extract<V2Route, { kind: 'blob' }>): Promise<Response> {
    await check(grant, { kind: 'blob', name: route.name, digest: route.digest });
    const target = targetOf(upstreams, route.name);
    const res = c.env.outgoing;
    const request = { method: c.req.method, range: c.req.header('range'), ifRange: c.req.header('if-range') };
    const extra = { ...API_HEADER, 'X-Request-Id': c.get('requestId') };

    const cachedSize = cache.lookup(route.digest);
    if (cachedSize !== undefined) {
      const release = cache.pin(route.digest);
      try {
        const plan = planBlob(request, { size: cachedSize, digest: route.digest });
        Object.assign(plan.headers, extra);
        c.set('sentStatus', plan.status);
        sending++;
        const sent = await sendBlobFile(res, plan, cache.blobPath(route.digest), chunkSize).finally(() => { sending--; });
        metrics.inc('berth_proxy_cache_hits_total', { kind: 'blob' });
        metrics.inc('berth_proxy_cache_hit_bytes_total', {}, sent);
        metrics.inc('berth_proxy_served_bytes_total', { kind: 'blob' }, sent);
      } finally {
        release();
      }
      return RESPONSE_ALREADY_SENT;
    }

    let f = fetcher.get(route.digest);
    if (!f && c.req.method === 'HEAD') return headUpstream(target, route.digest);
    metrics.inc('berth_proxy_cache_misses_total', { kind: 'blob' });
    f ??= fetcher.start(target.client, target.repository, route.digest, c.get('log'));
    const size = await f.ready;
    const plan = planBlob(request, { size, digest: route.digest });
    Object.assign(plan.headers, extra);
    c.set('sentStatus', plan.status);
    sending++;
    const out = await sendWhileFetching(res, plan, f, chunkSize).finally(() => { sending--; });
    metrics.inc('berth_proxy_cache_miss_bytes_total', {}, out.sent);
    metrics.inc('berth_proxy_served_bytes_total', { kind: 'blob' }, out.sent);
    if (out.failedBeforeHeaders) {
      if (f.verified && cache.lookup(route.digest) !== undefined) {
        await sendBlobFile(res, plan, cache.blobPath(route.digest));
        return RESPONSE_ALREADY_SENT;
      }
      throw out.failedBeforeHeaders;
    }
    return RESPONSE_ALREADY_SENT;
  }

  async function headUpstream(target: ReturnType<typeof targetOf>, digest: string): Promise<Response> {
    const res = await target.client.request(`${target.repository}/blobs/${digest}`, { method: 'HEAD', scope: `repository:${target.repository}:pull` });
    await res.cancel();
    if (res.status === 404) throw new OciError('BLOB_UNKNOWN', `blob ${digest} is not in ${target.client.alias}/${target.repository}`);
    if (!res.ok) throw new OciError(res.status >= 500 ? 'UPSTREAM_UNAVAILABLE' : 'UPSTREAM_ERROR', `upstream ${target.client.alias} answered ${res.status} for blob ${digest}`);
    const plan = planBlob({ method: 'HEAD' }, { size: Number(res.header('content-length') ?? 0), digest });
    return new Response(null, { status: 200, headers: { ...plan.headers, ...API_HEADER } });
  }

  return { app, log, metrics, cache, fetcher, close: () => { deltas.close(); verifier?.close(); return fetcher.close(); } };
}

/** Starts the proxy on a socket; used by `main`, the tests, the demo and the e2e tests. */
export async function startRegistryProxy(opts: ProxyOptions): Promise<RunningProxy> {
  // A key readable by others or a pair that does not match stops the start before the cache is opened.
  if (opts.tls) await loadTls(opts.tls);
  const proxy = await createProxy(opts);
  let served: Served;
  try {
    // Large blobs on slow links: no request timeout; idle sockets are closed by keep-alive limits.
    served = await serveHttp({ fetch: proxy.app.fetch, listen: opts.listen ?? '127.0.0.1:0', tls: opts.tls, log: proxy.log, requestTimeoutMs: 0 });
  } catch (err) {
    await proxy.close();
    throw err;
  }
  const { url } = served;
  proxy.log.info({ url, cacheDir: opts.cacheDir, upstreams: opts.upstreams.map((u) => ({ alias: u.alias, url: u.url, auth: u.credentials ? ('token' in u.credentials ? 'token' : 'basic') : 'anonymous' })), anonymous: !!opts.anonymous }, 'registry proxy listening');
  return {
    url,
    log: proxy.log,
    metrics: proxy.metrics,
    cache: proxy.cache,
    async close() {
      served.dispose();
      await served.close(0);
      await proxy.close();
    },
  };
}
