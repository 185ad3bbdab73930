import { open } from 'node:fs/promises';
import type { HttpBindings } from '@hono/node-server';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context, Hono } from 'hono';
import { planBlob, sendBlobFile } from '../../common/blob-http.js';
import { decodeHeader, HEADER_BYTES } from '../../common/delta/index.js';
import { DELTA_MEDIA_TYPE, deltaPlanRequest } from '../../common/delta/wire.js';
import { isDigest } from '../../common/digest.js';
import type { Logger } from '../../common/log.js';
import type { Want } from '../access.js';
import { OciError } from '../errors.js';
import { parseProxyImage, type ProxyImage } from '../warm.js';
import { DeltaCache, type DeltaCacheOptions } from './cache.js';
import { ImageResolver, type ProxyParts, type ResolvedImage } from './images.js';
import { DeltaJobs } from './jobs.js';
import { LayerPaths } from './paths.js';
import { DeltaPlanner } from './plan.js';

export type DeltaEnv = { Bindings: HttpBindings; Variables: { log: Logger } };

export interface DeltaRouteParts<E extends DeltaEnv> extends ProxyParts {
  cacheDir: string;
  log: Logger;
  /** Throws (401/403 as OciError) unless the request's token may pull `want`. */
  authorize(c: Context<E>, want: Want): Promise<void>;
  options?: DeltaCacheOptions;
}

async function readDeltaHeader(path: string, digest: string) {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    throw new OciError('BLOB_UNKNOWN', `delta ${digest} is not in this proxy's cache; ask /berth/v1/deltas/plan for it`);
  }
  try {
    const head = Buffer.alloc(HEADER_BYTES);
    await fh.read(head, 0, HEADER_BYTES, 0);
    return { header: decodeHeader(head), size: (await fh.stat()).size };
  } finally {
    await fh.close();
  }
}

/**
 * Mounts the delta routes on the proxy's app:
 *   POST /berth/v1/deltas/plan          per layer of a target image: present, delta, full or pending (202)
 *   GET|HEAD /berth/v1/deltas/<digest>?target=IMAGE&base=IMAGE   a delta, served like a blob
 * Pull scopes apply to both: every image named must be one the token may pull, and a delta is
 * only served between a layer of `base` and a layer of `target`.
 */
export async function mountDeltaRoutes<E extends DeltaEnv>(app: Hono<E>, parts: DeltaRouteParts<E>): Promise<{ close(): void; idle(): Promise<void> }> {
  const jobs = new DeltaJobs(parts.log);
  const cache = new DeltaCache(parts.cacheDir, parts, jobs, parts.log, parts.options);
  const paths = new LayerPaths(parts.cacheDir, parts, jobs);
  await cache.open();
  await paths.open();
  const resolver = new ImageResolver(parts);
  const planner = new DeltaPlanner(cache, paths);

  async function allowed(c: Context<E>, image: string, what: string, platform?: string): Promise<ResolvedImage> {
    let want: ProxyImage;
    try {
      want = parseProxyImage(image);
    } catch (err) {
      throw new OciError('NAME_INVALID', `${what} ${JSON.stringify(image)}: ${(err as Error).message}`, undefined, 400);
    }
    await parts.authorize(c, { kind: 'manifest', ...want });
    return resolver.resolve(want, platform, c.var.log);
  }

  app.post('/berth/v1/deltas/plan', async (c) => {
    const parsed = deltaPlanRequest.safeParse(await c.req.json().catch(() => null));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new OciError('MANIFEST_INVALID', `deltas/plan: ${issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'bad body'}; expected {"target": IMAGE, "have": [IMAGE…], "platform"?: "os/arch"}`, undefined, 400);
    }
    const { target: t, have: h, platform } = parsed.data;
    const target = await allowed(c, t, 'target', platform);
    const have: ResolvedImage[] = [];
    for (const image of h) have.push(await allowed(c, image, 'have', platform));
    const plan = await planner.plan(target, have, c.var.log);
    if (plan.retryAfter) return c.json(plan, 202, { 'Retry-After': String(plan.retryAfter) });
    return c.json(plan, 200);
  });

  app.on(['GET', 'HEAD'], '/berth/v1/deltas/:digest', async (c) => {
    const digest = c.req.param('digest');
    if (!isDigest(digest)) throw new OciError('DIGEST_INVALID', `delta ${JSON.stringify(digest)}: expected sha256:<64 hex>`);
    const t = c.req.query('target');
    const b = c.req.query('base');
    if (!t || !b) throw new OciError('NAME_INVALID', 'a delta is fetched with ?target=IMAGE&base=IMAGE (the URL a plan gives)', undefined, 400);
    const target = await allowed(c, t, 'target');
    const base = await allowed(c, b, 'base');
    const path = cache.deltaPath(digest);
    const { header, size } = await readDeltaHeader(path, digest);
    if (!target.layers.some((l) => l.diffId === header.to) || !base.layers.some((l) => l.diffId === header.from)) {
      throw new OciError('DENIED', `delta ${digest} does not lead from a layer of ${base.ref} to a layer of ${target.ref}`);
    }
    const plan = planBlob({ method: c.req.method, range: c.req.header('range'), ifRange: c.req.header('if-range') }, { size, digest, contentType: DELTA_MEDIA_TYPE });
    await sendBlobFile(c.env.outgoing, plan, path);
    return RESPONSE_ALREADY_SENT;
  });

  return { close: () => jobs.stop(), idle: () => jobs.idle() };
}
