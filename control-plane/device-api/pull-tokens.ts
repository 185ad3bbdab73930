import { SignJWT } from 'jose';
import { TOKEN, type PullAccess } from '../../protocol/tokens.js';
import type { SigningKeys } from '../signing-keys.js';

export interface MintedPullToken {
  token: string;
  expiresAt: string;
  expiresIn: number;
  issuedAt: string;
}

/** A registry-proxy pull token (Docker token spec `access` claim, plus per-device `digests`). */
export async function mintPullToken(keys: SigningKeys, subject: string, access: PullAccess, ttlSec: number, now: Date): Promise<MintedPullToken> {
  const key = keys.active();
  const iat = Math.floor(now.getTime() / 1000);
  const token = await new SignJWT({ access })
    .setProtectedHeader({ alg: 'EdDSA', typ: TOKEN.pullTyp, kid: key.kid })
    .setIssuer(TOKEN.issuer)
    .setAudience(TOKEN.pullAudience)
    .setSubject(subject)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttlSec)
    .sign(key.privateKey);
  return { token, expiresAt: new Date((iat + ttlSec) * 1000).toISOString(), expiresIn: ttlSec, issuedAt: new Date(iat * 1000).toISOString() };
}
