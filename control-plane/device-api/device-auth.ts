import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { createMiddleware } from 'hono/factory';
import { decodeProtectedHeader } from '../../protocol/jose-open.js';
import type { ControlPlaneContext } from '../context.js';
import { bearerOf, errorBody, HttpError, type AppEnv, type DeviceActor } from '../http.js';
import type { DirectAnswer } from './direct-serve.js';
import type { VerifiedDeviceToken } from './token-cache.js';
import type { DeviceRow } from '../db/point-reads.js';
import { checkSocketCertificate } from './client-cert.js';
import { openDeviceToken } from './device-token.js';

/** Verifies a device token's signature and claims (cached per token until it expires); null when it is not one. */
export async function verifyDeviceToken(ctx: Pick<ControlPlaneContext, 'keys' | 'now' | 'deviceTokens'>, token: string): Promise<VerifiedDeviceToken | null> {
  const nowSec = Math.floor(ctx.now().getTime() / 1000);
  const cached = ctx.deviceTokens.get(token, nowSec);
  if (cached) return cached;
  try {
    // The kid chooses the key before anything is verified; only an EdDSA token may make the keys
    // be re-read (a kid another process made), as jose looked its key up only after the alg check.
    const header = decodeProtectedHeader(token);
    const key = header.alg === 'EdDSA' && typeof header.kid === 'string' ? await ctx.keys.publicKey(header.kid) : undefined;
    const verified = openDeviceToken(token, key, nowSec);
    ctx.deviceTokens.set(token, verified);
    return verified;
  } catch {
    return null;
  }
}

/**
 * The device of a request's `Authorization` header: a device token whose device is still enrolled
 * and whose epoch is current, so a revocation takes effect on the very next request; with
 * `--device-client-ca`, the socket's client certificate must name it. Throws the refusal
 * (HttpError). Shared by the Hono middleware below and the routes answered on node:http
 * (desired-direct.ts, report-direct.ts), so both refuse alike.
 */
export async function deviceOf(ctx: ControlPlaneContext, authorization: string | undefined, socket: () => Socket | undefined): Promise<DeviceActor> {
  const claims = await claimsOf(ctx, authorization);
  // A prepared statement on the hottest path (every device request): db/point-reads.ts.
  return checkedDevice(ctx, claims, await ctx.reads.device(claims.sub), socket);
}

/** deviceOf's first half: the token's claims (signature cached), or the refusal. */
export async function claimsOf(ctx: ControlPlaneContext, authorization: string | undefined): Promise<VerifiedDeviceToken> {
  const token = bearerOf(authorization);
  if (!token) throw new HttpError(401, 'unauthenticated', 'a device token is required (Authorization: Bearer …)');
  const claims = await verifyDeviceToken(ctx, token);
  if (!claims) throw new HttpError(401, 'invalid-token', 'device token is invalid or expired; enroll again');
  return claims;
}

/** deviceOf's second half: the device row of the claims (`d`, just read) checked, or the refusal. */
export function checkedDevice(ctx: ControlPlaneContext, claims: VerifiedDeviceToken, d: DeviceRow | undefined, socket: () => Socket | undefined): DeviceActor {
  if (!d) throw new HttpError(401, 'invalid-token', 'device token names an unknown device');
  if (d.status === 'revoked') throw new HttpError(403, 'device-revoked', `device ${d.serial} is revoked`);
  if (d.status !== 'enrolled' || d.tokenEpoch !== claims.epoch) throw new HttpError(401, 'token-superseded', 'device token is no longer valid; enroll again');
  if (ctx.config.deviceClientCerts) checkSocketCertificate(socket(), d.serial);
  return { kind: 'device', id: d.id, serial: d.serial };
}

/** How Hono labels a refusal of the device API's middleware (the sub-app's `*`) in the request metrics. */
const AUTH_ROUTE = '/v1/device/*';

/**
 * deviceOf for a request answered on node:http (desired-direct.ts, report-direct.ts): the device,
 * or its refusal as the answer, counted under the route Hono's middleware counts it.
 */
export async function directDeviceOf(ctx: ControlPlaneContext, req: IncomingMessage): Promise<DeviceActor | DirectAnswer> {
  return directRefusal(() => deviceOf(ctx, req.headers.authorization, () => req.socket));
}

/** A device check's HttpError as the direct answer, counted under the route Hono's middleware counts it. */
export async function directRefusal<T>(check: () => Promise<T>): Promise<T | DirectAnswer> {
  try {
    return await check();
  } catch (err) {
    if (err instanceof HttpError) return { status: err.status, body: errorBody(err.code, err.message, err.field), metricsRoute: AUTH_ROUTE };
    throw err;
  }
}

/** Hono middleware: deviceOf for every route of the device API. Sets `c.var.device`. */
export function requireDevice() {
  return createMiddleware<AppEnv>(async (c, next) => {
    c.set('device', await deviceOf(c.var.ctx, c.req.header('authorization'), () => (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket));
    await next();
  });
}
