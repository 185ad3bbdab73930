import { createRemoteJWKSet, customFetch, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { Logger } from '../common/log.js';
import { RevocationPoller } from './revocations.js';
import { pullAccess, TOKEN } from '../protocol/tokens.js';
import type { Grant } from './access.js';
import { OciError } from './errors.js';

export const PROXY_SERVICE = 'berth-registry-proxy';

/**
 * Verifies the control plane's pull tokens (EdDSA JWTs) against its JWKS. jose caches the key set
 * and refetches it when a token names a kid it has not seen (key rotation), at most once per
 * `cooldownMs`.
 */
export class PullTokenVerifier {
  private readonly jwks: JWTVerifyGetKey;
  private readonly revocations: RevocationPoller | undefined;

  constructor(readonly controlPlane: string, opts: { cooldownMs?: number; cacheMaxAgeMs?: number; revocationPollMs?: number; log?: Logger; fetch?: typeof fetch } = {}) {
    const base = controlPlane.replace(/\/+$/, '');
    if (opts.log) {
      this.revocations = new RevocationPoller(base, opts.revocationPollMs ?? 2000, opts.log, opts.fetch);
      this.revocations.start();
    }
    this.jwks = createRemoteJWKSet(new URL(`${base}/.well-known/jwks.json`), {
      cooldownDuration: opts.cooldownMs ?? 30_000,
      cacheMaxAge: opts.cacheMaxAgeMs ?? 10 * 60_000,
      timeoutDuration: 5000,
      ...(opts.fetch ? { [customFetch]: opts.fetch } : {}),
    });
  }

  close(): void {
    this.revocations?.stop();
  }

  /** The challenge that sends docker/skopeo to the control plane's token endpoint. */
  challenge(name?: string): string {
    const realm = `${this.controlPlane.replace(/\/+$/, '')}/v1/registry/token`;
    return `Bearer realm="${realm}",service="${PROXY_SERVICE}"${name ? `,scope="repository:${name}:pull"` : ''}`;
  }

  async verify(authorization: string | null | undefined): Promise<Grant> {
    const m = /^Bearer\s+([A-Za-z0-9_.~+/=-]+)\s*$/i.exec(authorization ?? '');
    if (!m) throw new OciError('UNAUTHORIZED', authorization ? 'authorization is not a Bearer token' : 'authentication required: a pull token from the control plane');
    let payload: Record<string, unknown>;
    let kid: string | undefined;
    try {
      ({ payload, protectedHeader: { kid } } = await jwtVerify(m[1], this.jwks, {
        issuer: TOKEN.issuer,
        audience: TOKEN.pullAudience,
        typ: TOKEN.pullTyp,
        algorithms: ['EdDSA', 'Ed25519'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JOSEError) {
        throw new OciError('UNAUTHORIZED', `pull token refused: ${err.code}: ${err.message}`);
      }
      throw new OciError('UPSTREAM_UNAVAILABLE', `cannot check pull token: control plane keys unavailable (${(err as Error).message})`);
    }
    const revoked = this.revocations?.refusal(kid, String(payload.sub ?? ''));
    if (revoked) throw new OciError('UNAUTHORIZED', `pull token refused: ${revoked}`);
    const access = pullAccess.safeParse(payload.access ?? []);
    if (!access.success) throw new OciError('UNAUTHORIZED', `pull token refused: malformed access claim (${access.error.issues[0]?.message ?? 'invalid'})`);
    return { kind: 'token', subject: String(payload.sub ?? 'unknown'), access: access.data };
  }
}
