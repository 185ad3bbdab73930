import { sign } from 'node:crypto';
import { TOKEN } from '../../protocol/tokens.js';
import type { ControlPlaneContext } from '../context.js';

const b64 = (json: unknown) => Buffer.from(JSON.stringify(json)).toString('base64url');

/**
 * The device token an enrollment hands out: a compact JWS (EdDSA) with the header and claims
 * device-auth.ts verifies (with jose). Signed here with node:crypto directly: jose's SignJWT cost
 * about 8× the signature itself per call, the largest CPU item of an enrollment after the proof
 * check (issue 17).
 */
export function issueDeviceToken(ctx: Pick<ControlPlaneContext, 'keys' | 'now' | 'config'>, device: { id: string; serial: string; tokenEpoch: number }): { token: string; expiresAt: string } {
  const key = ctx.keys.active();
  const now = Math.floor(ctx.now().getTime() / 1000);
  const exp = now + ctx.config.deviceTokenTtlSec;
  const signingInput = `${b64({ alg: 'EdDSA', typ: TOKEN.deviceTyp, kid: key.kid })}.${b64({ epoch: device.tokenEpoch, serial: device.serial, iss: TOKEN.issuer, aud: TOKEN.deviceAudience, sub: device.id, iat: now, exp })}`;
  const token = `${signingInput}.${sign(null, Buffer.from(signingInput), key.privateKey).toString('base64url')}`;
  return { token, expiresAt: new Date(exp * 1000).toISOString() };
}
