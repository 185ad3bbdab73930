import { Hono } from 'hono';
import { parseImageRef } from '../../manifests/image-ref.js';
import type { Manifest } from '../../manifests/model.js';
import { deviceReport } from '../../protocol/device.js';
import { type PullAccess } from '../../protocol/tokens.js';
import { requireDevice } from './device-auth.js';
import type { ControlPlaneContext } from '../context.js';
import type { ImageRegistry } from '../manifests/registry.js';
import { desiredRelease } from '../devices/desired.js';
import { HttpError, jsonBody, type AppEnv } from '../http.js';
import { answerPoll, waitOf } from './desired-poll.js';
import { mintPullToken } from './pull-tokens.js';
import { acceptReport } from './report-accept.js';

/** Pull scopes for the images of the given manifests, grouped by proxy repository, digests pinned. */
export async function accessFor(registry: ImageRegistry, specs: Manifest[]): Promise<PullAccess> {
  const byName = new Map<string, Set<string>>();
  for (const spec of specs) {
    for (const s of Object.values(spec.services)) {
      const ref = parseImageRef(s.image);
      if (!ref.digest) continue;
      const name = await registry.repositoryName(ref);
      let set = byName.get(name);
      if (!set) byName.set(name, (set = new Set()));
      set.add(ref.digest);
    }
  }
  return [...byName].map(([name, digests]) => ({ type: 'repository' as const, name, actions: ['pull'], digests: [...digests].sort() }));
}

export { longPollMs } from './desired-poll.js';

/** What a device calls with its own token: it reads and writes its own state only (the id comes from the token). */
export function deviceApiRoutes(ctx: ControlPlaneContext) {
  const app = new Hono<AppEnv>();
  app.use('*', requireDevice());

  // Served ahead of Hono on node:http too (desired-direct.ts); both answer through answerPoll.
  app.get('/desired', async (c) => {
    const wait = waitOf(c.req.query());
    const a = await answerPoll(ctx, c.var.device.id, c.req.header('if-none-match'), wait, () => c.req.raw.signal);
    return a.status === 200 ? c.json(a.body, 200, a.headers) : c.body(null, a.status, a.headers);
  });

  app.post('/pull-token', async (c) => {
    ctx.seen.touch(c.var.device.id, ctx.now().getTime());
    const rel = await desiredRelease(ctx.db, c.var.device.id);
    const specs = rel ? [rel.manifest.spec, ...(rel.previous ? [rel.previous.spec] : [])] : [];
    let access: PullAccess;
    try {
      access = await accessFor(ctx.registry, specs);
    } catch (err) {
      throw new HttpError(503, 'registry-proxy-unavailable', `cannot map images to the registry proxy: ${(err as Error).message}`);
    }
    const t = await mintPullToken(ctx.keys, `device:${c.var.device.id}`, access, ctx.config.pullTokenTtlSec, ctx.now());
    return c.json({ token: t.token, expiresAt: t.expiresAt, registryProxy: ctx.config.registryProxy });
  });

  // Served ahead of Hono on node:http too (report-direct.ts); both answer through acceptReport
  // (batched with the reports that arrive meanwhile, answered after the commit).
  app.post('/report', async (c) => {
    const a = await acceptReport(ctx, c.var.device.id, await jsonBody(c, deviceReport));
    return c.json(a.body, a.status);
  });

  return app;
}
