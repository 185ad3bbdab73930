import { sign, type KeyObject } from 'node:crypto';
import { JoseRefused, verifyCompactEdDSA } from '../../protocol/jose-open.js';
import { TOKEN } from '../../protocol/tokens.js';
import type { ControlPlaneContext } from '../context.js';
import type { VerifiedDeviceToken } from './token-cache.js';

/**
 * The device token: a compact JWS (EdDSA over Ed25519) that an enrollment hands out and every
 * device request presents. Signed and verified with node:crypto directly, not jose: jose 6 runs on
 * WebCrypto, 0.2-0.5 ms per token under load, several times the signature itself (issue 17). The
 * JWS itself is verified by protocol/jose-open.ts (the one JWS verify, shared with the gateway);
 * the claims are checked here as jose's jwtVerify did (test/unit/device-token.test.ts holds both
 * to jose, each way), so the token on the wire is unchanged.
 */

const b64 = (json: unknown) => Buffer.from(JSON.stringify(json)).toString('base64url');

export function issueDeviceToken(ctx: Pick<ControlPlaneContext, 'keys' | 'now' | 'config'>, device: { id: string; serial: string; tokenEpoch: number }): { token: string; expiresAt: string } {
  const key = ctx.keys.active();
  const now = Math.floor(ctx.now().getTime() / 1000);
  const exp = now + ctx.config.deviceTokenTtlSec;
  const signingInput = `${b64({ alg: 'EdDSA', typ: TOKEN.deviceTyp, kid: key.kid })}.${b64({ epoch: device.tokenEpoch, serial: device.serial, iss: TOKEN.issuer, aud: TOKEN.deviceAudience, sub: device.id, iat: now, exp })}`;
  const token = `${signingInput}.${sign(null, Buffer.from(signingInput), key.privateKey).toString('base64url')}`;
  return { token, expiresAt: new Date(exp * 1000).toISOString() };
}

/** A device token whose signature verified and whose claims did not: names the claim. */
export class DeviceTokenRefused extends Error {
  constructor(readonly claim: string, message: string) {
    super(message);
    this.name = 'DeviceTokenRefused';
  }
}

/** jose compares `typ` case-insensitively and without an `application/` prefix (RFC 7515 §4.1.9). */
const normalTyp = (typ: string) => typ.toLowerCase().replace(/^application\//, '');

/** A NumericDate claim (RFC 7519 §2): absent, or a finite number. */
function numericDate(claims: Record<string, unknown>, name: string): number | undefined {
  const v = claims[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new DeviceTokenRefused(name, `device token claim "${name}" is not a number`);
  return v;
}

/**
 * Verifies a device token against `key` (the public key its `kid` names; undefined when none is in
 * use) at `nowSec`, with jwtVerify's checks and options of before: alg EdDSA only, typ, iss, aud,
 * exp (required, no tolerance), nbf and iat when present, sub (required), and the epoch Berth adds.
 * Throws JoseRefused (the JWS) or DeviceTokenRefused (a claim), each naming what failed.
 */
export function openDeviceToken(token: string, key: KeyObject | undefined, nowSec: number): VerifiedDeviceToken {
  const { header, payload } = verifyCompactEdDSA(token, (h) => {
    if (!key) throw new DeviceTokenRefused('kid', `device token kid ${JSON.stringify(h.kid)} names no signing key in use`);
    return key;
  });
  if (typeof header.typ !== 'string' || normalTyp(header.typ) !== normalTyp(TOKEN.deviceTyp)) throw new DeviceTokenRefused('typ', `device token typ ${JSON.stringify(header.typ)} is not ${TOKEN.deviceTyp}`);
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    throw new JoseRefused('malformed', 'device token payload is not JSON');
  }
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw new JoseRefused('malformed', 'device token payload is not a JSON object');
  const c = claims as Record<string, unknown>;
  if (c.iss !== TOKEN.issuer) throw new DeviceTokenRefused('iss', `device token iss ${JSON.stringify(c.iss)} is not ${TOKEN.issuer}`);
  if (!(c.aud === TOKEN.deviceAudience || (Array.isArray(c.aud) && c.aud.includes(TOKEN.deviceAudience)))) throw new DeviceTokenRefused('aud', `device token aud ${JSON.stringify(c.aud)} does not include ${TOKEN.deviceAudience}`);
  numericDate(c, 'iat');
  const nbf = numericDate(c, 'nbf');
  if (nbf !== undefined && nbf > nowSec) throw new DeviceTokenRefused('nbf', `device token is not valid before ${nbf} (now ${nowSec})`);
  const exp = numericDate(c, 'exp');
  if (exp === undefined) throw new DeviceTokenRefused('exp', 'device token has no "exp" claim');
  if (exp <= nowSec) throw new DeviceTokenRefused('exp', `device token expired at ${exp} (now ${nowSec})`);
  if (typeof c.sub !== 'string') throw new DeviceTokenRefused('sub', 'device token has no "sub" (device id) string');
  if (typeof c.epoch !== 'number') throw new DeviceTokenRefused('epoch', 'device token has no "epoch" number');
  return { sub: c.sub, epoch: c.epoch, exp };
}
