import { createMiddleware } from 'hono/factory';
import { jwtVerify, type JWTPayload } from 'jose';
import { TOKEN } from '../../protocol/tokens.js';
import type { ControlPlaneContext } from '../context.js';
import { bearerOf, HttpError, type AppEnv } from '../http.js';
import type { VerifiedDeviceToken } from './token-cache.js';
import { checkClientCertificate } from './client-cert.js';

export interface DeviceClaims extends JWTPayload {
  epoch: number;
  serial: string;
}

/** Verifies a device token's signature and claims (cached per token until it expires); null when it is not one. */
export async function verifyDeviceToken(ctx: Pick<ControlPlaneContext, 'keys' | 'now' | 'deviceTokens'>, token: string): Promise<VerifiedDeviceToken | null> {
  const nowSec = Math.floor(ctx.now().getTime() / 1000);
  const cached = ctx.deviceTokens.get(token, nowSec);
  if (cached) return cached;
  try {
    const { payload } = await jwtVerify<DeviceClaims>(token, async (header) => {
      const key = await ctx.keys.publicKey(header.kid);
      if (!key) throw new Error('unknown kid');
      return key;
    }, { issuer: TOKEN.issuer, audience: TOKEN.deviceAudience, typ: TOKEN.deviceTyp, algorithms: ['EdDSA'], currentDate: ctx.now(), requiredClaims: ['exp', 'sub'] });
    if (typeof payload.sub !== 'string' || typeof payload.epoch !== 'number' || typeof payload.exp !== 'number') return null;
    const verified = { sub: payload.sub, epoch: payload.epoch, exp: payload.exp };
    ctx.deviceTokens.set(token, verified);
    return verified;
  } catch {
    return null;
  }
}

/**
 * Hono middleware: a device token whose device is still enrolled and whose epoch is current, so a
 * revocation takes effect on the very next request. Sets `c.var.device`.
 */
export function requireDevice() {
  return createMiddleware<AppEnv>(async (c, next) => {
    const ctx = c.var.ctx;
    const token = bearerOf(c.req.header('authorization'));
    if (!token) throw new HttpError(401, 'unauthenticated', 'a device token is required (Authorization: Bearer …)');
    const claims = await verifyDeviceToken(ctx, token);
    if (!claims) throw new HttpError(401, 'invalid-token', 'device token is invalid or expired; enroll again');
    // A prepared statement on the hottest path (every device request): db/point-reads.ts.
    const d = await ctx.reads.device(claims.sub);
    if (!d) throw new HttpError(401, 'invalid-token', 'device token names an unknown device');
    if (d.status === 'revoked') throw new HttpError(403, 'device-revoked', `device ${d.serial} is revoked`);
    if (d.status !== 'enrolled' || d.tokenEpoch !== claims.epoch) throw new HttpError(401, 'token-superseded', 'device token is no longer valid; enroll again');
    checkClientCertificate(c, d.serial);
    c.set('device', { kind: 'device', id: d.id, serial: d.serial });
    await next();
  });
}
