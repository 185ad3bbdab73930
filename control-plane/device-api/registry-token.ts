import { Hono } from 'hono';
import type { PullAccess } from '../../protocol/tokens.js';
import { registryTokenQuery } from '../../protocol/registry-token.js';
import { operatorFromToken } from '../operators/auth.js';
import { verifyDeviceToken } from './device-auth.js';
import type { ControlPlaneContext } from '../context.js';
import { accessFor } from './routes.js';
import { desiredRelease } from '../devices/desired.js';
import { devices } from '../db/schema.js';
import { eq } from 'drizzle-orm';
import { bearerOf, HttpError, queryOf, type AppEnv } from '../http.js';
import { mintPullToken } from './pull-tokens.js';

/** `repository:NAME:pull,push` → {name, actions}; other resource types are ignored (not granted). */
export function parseScopes(scopes: string[]): { name: string; actions: string[] }[] {
  const out: { name: string; actions: string[] }[] = [];
  for (const s of scopes) {
    const m = /^repository(?:\([^)]*\))?:([^:]+):([a-z*,]+)$/.exec(s);
    if (!m) continue;
    out.push({ name: m[1], actions: m[2].split(',') });
  }
  return out;
}

function credentialOf(header: string | undefined): string | undefined {
  const bearer = bearerOf(header);
  if (bearer) return bearer;
  const m = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!m) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 ? decoded.slice(colon + 1) : undefined;
}

export function registryTokenRoutes(ctx: ControlPlaneContext) {
  const app = new Hono<AppEnv>();
  app.get('/token', async (c) => {
    queryOf(c, registryTokenQuery);
    const credential = credentialOf(c.req.header('authorization'));
    if (!credential) {
      c.header('WWW-Authenticate', 'Basic realm="berth-control-plane"');
      throw new HttpError(401, 'unauthenticated', 'an operator token (Basic password or Bearer) or a device token is required');
    }
    const requested = parseScopes(c.req.queries('scope') ?? []);
    let access: PullAccess;
    let subject: string;
    const operator = await operatorFromToken(ctx.db, credential, ctx.now());
    if (operator) {
      // Every operator role may read images; the proxy only serves reads.
      access = requested.filter((r) => r.actions.includes('pull') || r.actions.includes('*')).map((r) => ({ type: 'repository' as const, name: r.name, actions: ['pull'] }));
      subject = `operator:${operator.id}`;
    } else {
      const claims = await verifyDeviceToken(ctx, credential);
      if (!claims) throw new HttpError(401, 'invalid-token', 'token is not a valid operator or device token');
      const d = (await ctx.db.select().from(devices).where(eq(devices.id, claims.sub)).limit(1))[0];
      if (!d || d.status !== 'enrolled' || d.tokenEpoch !== claims.epoch) throw new HttpError(401, 'token-superseded', 'device token is no longer valid');
      const rel = await desiredRelease(ctx.db, d.id);
      const mine = await accessFor(ctx.registry, rel ? [rel.manifest.spec, ...(rel.previous ? [rel.previous.spec] : [])] : []);
      access = requested.length ? mine.filter((a) => requested.some((r) => r.name === a.name)) : mine;
      subject = `device:${d.id}`;
    }
    const t = await mintPullToken(ctx.keys, subject, access, ctx.config.operatorPullTokenTtlSec, ctx.now());
    return c.json({ token: t.token, access_token: t.token, expires_in: t.expiresIn, issued_at: t.issuedAt });
  });
  return app;
}
