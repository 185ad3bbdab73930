import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { DeviceTokenRefused, issueDeviceToken, openDeviceToken } from '../../control-plane/device-api/device-token.js';
import { JoseRefused } from '../../protocol/jose-open.js';
import { TOKEN } from '../../protocol/tokens.js';

/** The device token on node:crypto against jose, both ways: the same tokens accepted, the same refused. */

const ed = generateKeyPairSync('ed25519');
const other = generateKeyPairSync('ed25519');
const NOW = 1_790_000_000;
const TTL = 3600;
const device = { id: 'dev_0001', serial: 'SN-0001', tokenEpoch: 3 };
const ctx = {
  keys: { active: () => ({ kid: 'k1', privateKey: ed.privateKey }) },
  now: () => new Date(NOW * 1000),
  config: { deviceTokenTtlSec: TTL },
} as unknown as Parameters<typeof issueDeviceToken>[0];
const ours = () => issueDeviceToken(ctx, device).token;

/** What device-auth.ts passed jose before: the verification this one must match. */
const joseOpen = (token: string, key: KeyObject = ed.publicKey, nowSec = NOW) =>
  jwtVerify(token, key, { issuer: TOKEN.issuer, audience: TOKEN.deviceAudience, typ: TOKEN.deviceTyp, algorithms: ['EdDSA'], currentDate: new Date(nowSec * 1000), requiredClaims: ['exp', 'sub'] });

const joseIssue = (claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}, key: KeyObject = ed.privateKey) =>
  new SignJWT({ epoch: 3, serial: 'SN-0001', iss: TOKEN.issuer, aud: TOKEN.deviceAudience, sub: 'dev_0001', iat: NOW, exp: NOW + TTL, ...claims })
    .setProtectedHeader({ alg: 'EdDSA', typ: TOKEN.deviceTyp, kid: 'k1', ...header })
    .sign(key);

function refusal(f: () => unknown): Error {
  try {
    f();
  } catch (err) {
    if (err instanceof JoseRefused || err instanceof DeviceTokenRefused) return err;
    throw err;
  }
  throw new Error('accepted');
}

describe('device token', () => {
  it('is issued in a form jose verifies, with the claims devices and the CLI read', async () => {
    const { payload, protectedHeader } = await joseOpen(ours());
    expect(protectedHeader).toEqual({ alg: 'EdDSA', typ: TOKEN.deviceTyp, kid: 'k1' });
    expect(payload).toEqual({ epoch: 3, serial: 'SN-0001', iss: TOKEN.issuer, aud: TOKEN.deviceAudience, sub: 'dev_0001', iat: NOW, exp: NOW + TTL });
    expect(issueDeviceToken(ctx, device).expiresAt).toBe(new Date((NOW + TTL) * 1000).toISOString());
  });

  it('opens its own tokens and jose-signed ones alike', async () => {
    expect(openDeviceToken(ours(), ed.publicKey, NOW)).toEqual({ sub: 'dev_0001', epoch: 3, exp: NOW + TTL });
    expect(openDeviceToken(await joseIssue(), ed.publicKey, NOW)).toEqual({ sub: 'dev_0001', epoch: 3, exp: NOW + TTL });
    // jose's typ comparison: case and an application/ prefix do not matter; an aud list may hold ours.
    expect(openDeviceToken(await joseIssue({ aud: ['other', TOKEN.deviceAudience] }, { typ: `application/${TOKEN.deviceTyp.toUpperCase()}` }), ed.publicKey, NOW).sub).toBe('dev_0001');
  });

  it('refuses a changed token, another signer and an unknown kid, as jose does', async () => {
    const token = ours();
    const [h, p, s] = token.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: 'dev_0002' })).toString('base64url')}.${s}`;
    await expect(joseOpen(forged)).rejects.toThrow(/signature/);
    expect(refusal(() => openDeviceToken(forged, ed.publicKey, NOW))).toMatchObject({ code: 'bad-signature' });
    await expect(joseOpen(token, other.publicKey)).rejects.toThrow(/signature/);
    expect(refusal(() => openDeviceToken(token, other.publicKey, NOW))).toMatchObject({ code: 'bad-signature', message: 'JWS signature does not verify' });
    expect(refusal(() => openDeviceToken(token, undefined, NOW))).toMatchObject({ claim: 'kid', message: 'device token kid "k1" names no signing key in use' });
  });

  it('refuses another alg before any key is asked for', async () => {
    const hs = await new SignJWT({ epoch: 3 }).setProtectedHeader({ alg: 'HS256', typ: TOKEN.deviceTyp, kid: 'k1' }).setIssuer(TOKEN.issuer).setAudience(TOKEN.deviceAudience).setSubject('dev_0001').setExpirationTime(NOW + TTL).sign(new Uint8Array(32));
    await expect(joseOpen(hs)).rejects.toThrow(/alg/);
    expect(refusal(() => openDeviceToken(hs, undefined, NOW))).toMatchObject({ code: 'alg-not-allowed', message: 'JWS alg "HS256" is not allowed (only EdDSA)' });
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: TOKEN.deviceTyp })).toString('base64url')}.${ours().split('.')[1]}.`;
    expect(refusal(() => openDeviceToken(none, ed.publicKey, NOW))).toMatchObject({ code: 'alg-not-allowed' });
  });

  it('refuses an expired token from the second of its exp, as jose does', async () => {
    const token = ours();
    expect(openDeviceToken(token, ed.publicKey, NOW + TTL - 1).exp).toBe(NOW + TTL);
    await expect(joseOpen(token, ed.publicKey, NOW + TTL)).rejects.toThrow(/exp/);
    expect(refusal(() => openDeviceToken(token, ed.publicKey, NOW + TTL))).toMatchObject({ claim: 'exp', message: `device token expired at ${NOW + TTL} (now ${NOW + TTL})` });
  });

  it.each([
    ['typ', {}, { typ: 'berth-pull+jwt' }],
    ['iss', { iss: 'someone-else' }, {}],
    ['aud', { aud: TOKEN.pullAudience }, {}],
    ['nbf', { nbf: NOW + 10 }, {}],
    ['iat', { iat: 'yesterday' }, {}],
    ['exp', { exp: undefined }, {}],
    ['sub', { sub: undefined }, {}],
  ])('refuses a token whose %s jose refuses, naming it', async (claim, claims, header) => {
    const token = await joseIssue(claims, header);
    await expect(joseOpen(token)).rejects.toThrow();
    expect(refusal(() => openDeviceToken(token, ed.publicKey, NOW))).toMatchObject({ claim });
  });

  it('refuses a token without the epoch it is revoked by', async () => {
    const token = await joseIssue({ epoch: undefined });
    expect(refusal(() => openDeviceToken(token, ed.publicKey, NOW))).toMatchObject({ claim: 'epoch' });
  });
});
