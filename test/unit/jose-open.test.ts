import { createCipheriv, createHash, diffieHellman, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { CompactEncrypt, CompactSign, compactDecrypt, compactVerify, exportJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { decodeProtectedHeader, decryptCompactEcdhEs, JoseRefused, verifyCompactEdDSA, type JoseRefusal } from '../../protocol/jose-open.js';

/** protocol/jose-open.ts against jose: jose's tokens open with it, and its refusals are the right ones. */

const ed = generateKeyPairSync('ed25519');
const otherEd = generateKeyPairSync('ed25519');
const x = generateKeyPairSync('x25519');
const otherX = generateKeyPairSync('x25519');
const PAYLOAD = new TextEncoder().encode('{"device":"gw-0001","sequence":7}');
const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

function refusal(f: () => unknown): { code: JoseRefusal; message: string } {
  try {
    f();
  } catch (err) {
    if (err instanceof JoseRefused) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('accepted');
}

const joseSign = (payload = PAYLOAD, header: Record<string, unknown> = {}) => new CompactSign(payload).setProtectedHeader({ alg: 'EdDSA', kid: 'k1', ...header }).sign(ed.privateKey);
const joseSeal = (plain = PAYLOAD, to: KeyObject = x.publicKey, header: Record<string, unknown> = {}) =>
  new CompactEncrypt(plain).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid: 'me', ...header }).encrypt(to);
/** Replaces part `i` of a compact token. */
const swap = (token: string, i: number, text: string) => token.split('.').map((p, j) => (j === i ? text : p)).join('.');
/** Flips one bit of the decoded part `i`. */
const flip = (token: string, i: number) => {
  const b = Buffer.from(token.split('.')[i], 'base64url');
  b[b.length >> 1] ^= 1;
  return swap(token, i, b.toString('base64url'));
};

describe('verifyCompactEdDSA', () => {
  it('verifies what jose signs, passing the header to the key lookup', async () => {
    const jws = await joseSign(PAYLOAD, { typ: 't+jws' });
    const seen: Record<string, unknown>[] = [];
    const { header, payload } = verifyCompactEdDSA(jws, (h) => (seen.push(h), ed.publicKey));
    expect(Buffer.from(payload).equals(Buffer.from(PAYLOAD))).toBe(true);
    expect(header).toEqual({ alg: 'EdDSA', kid: 'k1', typ: 't+jws' });
    expect(seen).toEqual([header]);
  });

  it('accepts and refuses the same hand-signed tokens as jose (the same signing input)', async () => {
    const signingInput = `${b64({ alg: 'EdDSA', kid: 'k1' })}.${Buffer.from(PAYLOAD).toString('base64url')}`;
    const jws = `${signingInput}.${sign(null, Buffer.from(signingInput), ed.privateKey).toString('base64url')}`;
    expect(Buffer.from((await compactVerify(jws, ed.publicKey)).payload).equals(Buffer.from(PAYLOAD))).toBe(true);
    expect(Buffer.from(verifyCompactEdDSA(jws, () => ed.publicKey).payload).equals(Buffer.from(PAYLOAD))).toBe(true);
    const tampered = flip(jws, 1);
    await expect(compactVerify(tampered, ed.publicKey)).rejects.toThrow();
    expect(refusal(() => verifyCompactEdDSA(tampered, () => ed.publicKey)).code).toBe('bad-signature');
  });

  it('refuses a changed payload, header or signature, and another signer', async () => {
    const jws = await joseSign();
    expect(refusal(() => verifyCompactEdDSA(flip(jws, 1), () => ed.publicKey)).code).toBe('bad-signature');
    expect(refusal(() => verifyCompactEdDSA(flip(jws, 2), () => ed.publicKey)).code).toBe('bad-signature');
    expect(refusal(() => verifyCompactEdDSA(swap(jws, 0, b64({ alg: 'EdDSA', kid: 'k2' })), () => ed.publicKey)).code).toBe('bad-signature');
    expect(refusal(() => verifyCompactEdDSA(jws, () => otherEd.publicKey))).toEqual({ code: 'bad-signature', message: 'JWS signature does not verify' });
    expect(refusal(() => verifyCompactEdDSA(swap(jws, 2, jws.split('.')[2].slice(0, 40)), () => ed.publicKey)).message).toMatch(/signature is 30 bytes, an Ed25519 signature 64/);
  });

  it('refuses any other alg before looking at a key: none, HS256, ES256', () => {
    for (const alg of ['none', 'HS256', 'ES256', 'Ed25519', undefined]) {
      const jws = `${b64({ alg, kid: 'k1' })}.${b64('x')}.`;
      const r = refusal(() => verifyCompactEdDSA(jws, () => { throw new Error('key looked up'); }));
      expect(r.code).toBe('alg-not-allowed');
      expect(r.message).toContain('only EdDSA');
    }
  });

  it('refuses crit, a key that is not an Ed25519 public key, and malformed tokens', async () => {
    const signingInput = `${b64({ alg: 'EdDSA', crit: ['exp'], exp: 1 })}.${b64('x')}`;
    const critical = `${signingInput}.${sign(null, Buffer.from(signingInput), ed.privateKey).toString('base64url')}`;
    await expect(compactVerify(critical, ed.publicKey)).rejects.toThrow(/not recognized/);
    expect(refusal(() => verifyCompactEdDSA(critical, () => ed.publicKey)).message).toMatch(/crit \["exp"\]/);
    const jws = await joseSign();
    expect(refusal(() => verifyCompactEdDSA(jws, () => ed.privateKey)).message).toMatch(/not an Ed25519 public key \(private ed25519\)/);
    expect(refusal(() => verifyCompactEdDSA(jws, () => x.publicKey)).message).toMatch(/not an Ed25519 public key \(public x25519\)/);
    expect(refusal(() => verifyCompactEdDSA('a.b', () => ed.publicKey)).message).toMatch(/3 parts, this has 2/);
    expect(refusal(() => verifyCompactEdDSA('', () => ed.publicKey)).code).toBe('malformed');
    expect(refusal(() => verifyCompactEdDSA(swap(jws, 1, 'a*b'), () => ed.publicKey)).message).toBe('JWS payload is not base64url');
    expect(refusal(() => verifyCompactEdDSA(`${b64('[1]')}.${b64('x')}.`, () => ed.publicKey)).message).toBe('protected header is not a JSON object');
    expect(refusal(() => verifyCompactEdDSA(`${b64('{')}.${b64('x')}.`, () => ed.publicKey)).message).toMatch(/protected header is not JSON/);
  });
});

describe('decryptCompactEcdhEs', () => {
  it('decrypts what jose encrypts, with the header it was sealed under', async () => {
    const jwe = await joseSeal(PAYLOAD, x.publicKey, { typ: 't+jwe' });
    const { header, plaintext } = decryptCompactEcdhEs(jwe, x.privateKey);
    expect(Buffer.from(plaintext).equals(Buffer.from(PAYLOAD))).toBe(true);
    expect(header).toMatchObject({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', typ: 't+jwe', epk: { kty: 'OKP', crv: 'X25519' } });
    expect(Buffer.from(decryptCompactEcdhEs(await joseSeal(new Uint8Array(0)), x.privateKey).plaintext).length).toBe(0);
  });

  it('uses apu and apv in the key derivation, as jose does', async () => {
    const jwe = await new CompactEncrypt(PAYLOAD)
      .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM' })
      .setKeyManagementParameters({ apu: Buffer.from('sender'), apv: Buffer.from('gw-0001') })
      .encrypt(x.publicKey);
    expect(decodeProtectedHeader(jwe)).toMatchObject({ apu: b64('sender'), apv: b64('gw-0001') });
    expect(Buffer.from(decryptCompactEcdhEs(jwe, x.privateKey).plaintext).equals(Buffer.from(PAYLOAD))).toBe(true);
  });

  it('seals what jose decrypts: the same KDF, key wrap and AAD', async () => {
    // A JWE built by hand from RFC 7518's steps: if jose opens it, both sides read the RFC alike.
    const eph = generateKeyPairSync('x25519');
    const epk = await exportJWK(eph.publicKey);
    const protectedB64 = b64({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', epk: { kty: epk.kty, crv: epk.crv, x: epk.x } });
    const z = diffieHellman({ privateKey: eph.privateKey, publicKey: x.publicKey });
    const len = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
    const kek = createHash('sha256').update(Buffer.from([0, 0, 0, 1])).update(z).update(Buffer.concat([len(Buffer.from('ECDH-ES+A256KW')), len(Buffer.alloc(0)), len(Buffer.alloc(0)), Buffer.from([0, 0, 1, 0])])).digest();
    const cek = generateKeyPairSync('x25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
    const wrap = createCipheriv('id-aes256-wrap', kek, Buffer.from('A6A6A6A6A6A6A6A6', 'hex'));
    const wrapped = Buffer.concat([wrap.update(cek), wrap.final()]);
    const iv = Buffer.alloc(12, 7);
    const gcm = createCipheriv('aes-256-gcm', cek, iv).setAAD(Buffer.from(protectedB64));
    const ct = Buffer.concat([gcm.update(PAYLOAD), gcm.final()]);
    const jwe = [protectedB64, wrapped, iv, ct, gcm.getAuthTag()].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
    expect(Buffer.from((await compactDecrypt(jwe, x.privateKey)).plaintext).equals(Buffer.from(PAYLOAD))).toBe(true);
    expect(Buffer.from(decryptCompactEcdhEs(jwe, x.privateKey).plaintext).equals(Buffer.from(PAYLOAD))).toBe(true);
  });

  it('refuses another recipient, and a change to any part', async () => {
    const jwe = await joseSeal();
    expect(refusal(() => decryptCompactEcdhEs(jwe, otherX.privateKey))).toEqual({ code: 'decrypt-failed', message: 'JWE encrypted key does not unwrap with this key' });
    expect(refusal(() => decryptCompactEcdhEs(flip(jwe, 1), x.privateKey)).code).toBe('decrypt-failed');
    expect(refusal(() => decryptCompactEcdhEs(flip(jwe, 2), x.privateKey)).message).toMatch(/tag does not verify/);
    expect(refusal(() => decryptCompactEcdhEs(flip(jwe, 3), x.privateKey)).message).toMatch(/tag does not verify/);
    expect(refusal(() => decryptCompactEcdhEs(flip(jwe, 4), x.privateKey)).message).toMatch(/tag does not verify/);
    // The header is the AAD: a changed kid (same epk) breaks the tag, as it does for jose.
    const header = { ...decodeProtectedHeader(jwe), kid: 'someone-else' };
    const moved = swap(jwe, 0, b64(header));
    await expect(compactDecrypt(moved, x.privateKey)).rejects.toThrow();
    expect(refusal(() => decryptCompactEcdhEs(moved, x.privateKey)).message).toMatch(/tag does not verify/);
  });

  it('refuses any other alg or enc, crit, zip, and a key that is not an X25519 private key', async () => {
    const jwe = await joseSeal();
    const header = decodeProtectedHeader(jwe);
    const withHeader = (over: Record<string, unknown>) => swap(jwe, 0, b64({ ...header, ...over }));
    for (const alg of ['ECDH-ES', 'RSA-OAEP', 'dir', 'A256KW', 'ECDH-ES+A128KW']) expect(refusal(() => decryptCompactEcdhEs(withHeader({ alg }), x.privateKey))).toMatchObject({ code: 'alg-not-allowed' });
    for (const enc of ['A128GCM', 'A256CBC-HS512']) expect(refusal(() => decryptCompactEcdhEs(withHeader({ enc }), x.privateKey)).message).toMatch(/enc .* is not allowed \(only A256GCM\)/);
    expect(refusal(() => decryptCompactEcdhEs(withHeader({ crit: ['b64'] }), x.privateKey)).message).toMatch(/crit/);
    expect(refusal(() => decryptCompactEcdhEs(withHeader({ zip: 'DEF' }), x.privateKey)).message).toMatch(/zip/);
    expect(refusal(() => decryptCompactEcdhEs(jwe, x.publicKey)).message).toMatch(/not an X25519 private key \(public x25519\)/);
    expect(refusal(() => decryptCompactEcdhEs(jwe, ed.privateKey)).message).toMatch(/not an X25519 private key \(private ed25519\)/);
    expect(refusal(() => decryptCompactEcdhEs(withHeader({ epk: { kty: 'EC', crv: 'P-256', x: 'a', y: 'b' } }), x.privateKey)).message).toMatch(/epk is not an X25519 public key/);
    expect(refusal(() => decryptCompactEcdhEs(withHeader({ apu: 7 }), x.privateKey)).message).toMatch(/apu or apv/);
  });

  it('refuses a low-order epk (an all-zero shared secret) and parts of the wrong length', async () => {
    const jwe = await joseSeal();
    const header = decodeProtectedHeader(jwe);
    const zeroPoint = swap(jwe, 0, b64({ ...header, epk: { kty: 'OKP', crv: 'X25519', x: Buffer.alloc(32).toString('base64url') } }));
    expect(refusal(() => decryptCompactEcdhEs(zeroPoint, x.privateKey))).toMatchObject({ code: 'decrypt-failed', message: expect.stringMatching(/JWE epk gives no shared secret/) });
    expect(refusal(() => decryptCompactEcdhEs(swap(jwe, 2, Buffer.alloc(16).toString('base64url')), x.privateKey)).message).toBe("JWE iv is 16 bytes, A256GCM's 12");
    expect(refusal(() => decryptCompactEcdhEs(swap(jwe, 4, Buffer.alloc(8).toString('base64url')), x.privateKey)).message).toBe("JWE tag is 8 bytes, A256GCM's 16");
    expect(refusal(() => decryptCompactEcdhEs(swap(jwe, 1, Buffer.alloc(24).toString('base64url')), x.privateKey)).message).toMatch(/encrypted key is 24 bytes/);
    expect(refusal(() => decryptCompactEcdhEs(jwe.split('.').slice(0, 4).join('.'), x.privateKey)).message).toMatch(/5 parts, this has 4/);
    expect(refusal(() => decryptCompactEcdhEs(swap(jwe, 3, 'no=pad'), x.privateKey)).message).toBe('JWE ciphertext is not base64url');
  });
});

describe('decodeProtectedHeader', () => {
  it('reads the header of a JWS and a JWE without verifying, and names what is wrong', async () => {
    expect(decodeProtectedHeader(await joseSign())).toEqual({ alg: 'EdDSA', kid: 'k1' });
    expect(decodeProtectedHeader(await joseSeal())).toMatchObject({ alg: 'ECDH-ES+A256KW', kid: 'me' });
    expect(() => decodeProtectedHeader('.x.y')).toThrow(/no protected header/);
    expect(() => decodeProtectedHeader('nodots')).toThrow(/no protected header/);
    expect(() => decodeProtectedHeader(`${b64('null')}.x`)).toThrow(/not a JSON object/);
  });
});
