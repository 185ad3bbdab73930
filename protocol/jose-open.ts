import { createDecipheriv, createHash, createPublicKey, diffieHellman, verify, type KeyObject } from 'node:crypto';

/**
 * The receiving half of the two compact JOSE forms Berth sends a gateway, on node:crypto alone:
 * an EdDSA (Ed25519) JWS (RFC 7515, 8037: the deployment document) and an ECDH-ES+A256KW / A256GCM
 * JWE to an X25519 key (RFC 7516, 7518: a secret). The only implementation of both; the control
 * plane signs and encrypts with `jose`, whose tokens these accept (test/unit/jose-open.test.ts).
 * Not `jose` here because jose 6 runs on WebCrypto: on the gateway it loaded webcrypto and its own
 * code for two calls, ~1.5 MiB of the daemon's resident memory (edge-daemon/README.md, Footprint).
 *
 * Fails closed: any other alg or enc, any `crit` or `zip`, a key of another type, a part of the
 * wrong length or not base64url, a bad signature or tag is a `JoseRefused` naming what and where.
 */

export type JoseRefusal = 'malformed' | 'alg-not-allowed' | 'bad-signature' | 'decrypt-failed';

export class JoseRefused extends Error {
  constructor(readonly code: JoseRefusal, message: string) {
    super(message);
    this.name = 'JoseRefused';
  }
}

const B64URL = /^[A-Za-z0-9_-]*$/;

/** One base64url part, strictly (Buffer's decoder skips characters it does not know). */
function part(text: string, what: string): Buffer {
  if (!B64URL.test(text) || text.length % 4 === 1) throw new JoseRefused('malformed', `${what} is not base64url`);
  return Buffer.from(text, 'base64url');
}

/** The protected header of a compact JWS or JWE, decoded and NOT verified: for choosing a key. */
export function decodeProtectedHeader(token: string): Record<string, unknown> {
  if (typeof token !== 'string') throw new JoseRefused('malformed', 'token is not a string');
  const dot = token.indexOf('.');
  if (dot <= 0) throw new JoseRefused('malformed', 'token has no protected header (not a compact JWS or JWE)');
  let header: unknown;
  try {
    header = JSON.parse(part(token.slice(0, dot), 'protected header').toString('utf8'));
  } catch (err) {
    if (err instanceof JoseRefused) throw err;
    throw new JoseRefused('malformed', `protected header is not JSON: ${(err as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new JoseRefused('malformed', 'protected header is not a JSON object');
  return header as Record<string, unknown>;
}

/** No header extension is understood, so any `crit` is refused (RFC 7515 §4.1.11). */
function refuseCrit(header: Record<string, unknown>, what: string): void {
  if (Object.hasOwn(header, 'crit')) throw new JoseRefused('malformed', `${what} header lists crit ${JSON.stringify(header.crit)}, and no extension is understood`);
}

/**
 * Verifies a compact JWS signed with EdDSA over Ed25519. `keyFor` sees the header after alg and crit
 * were checked (so alg "none" or HS256 is refused before any key is looked at) and returns the key,
 * or throws its own error.
 */
export function verifyCompactEdDSA(jws: string, keyFor: (header: Record<string, unknown>) => KeyObject): { header: Record<string, unknown>; payload: Uint8Array } {
  const parts = typeof jws === 'string' ? jws.split('.') : [];
  if (parts.length !== 3) throw new JoseRefused('malformed', `a compact JWS has 3 parts, this has ${parts.length}`);
  const header = decodeProtectedHeader(jws);
  refuseCrit(header, 'JWS');
  if (header.alg !== 'EdDSA') throw new JoseRefused('alg-not-allowed', `JWS alg ${JSON.stringify(header.alg)} is not allowed (only EdDSA)`);
  const key = keyFor(header);
  if (key.type !== 'public' || key.asymmetricKeyType !== 'ed25519') throw new JoseRefused('malformed', `key for the JWS is not an Ed25519 public key (${key.type} ${String(key.asymmetricKeyType)})`);
  const payload = part(parts[1], 'JWS payload');
  const signature = part(parts[2], 'JWS signature');
  if (signature.length !== 64) throw new JoseRefused('bad-signature', `JWS signature is ${signature.length} bytes, an Ed25519 signature 64`);
  // The signing input is the two parts as sent, not a re-encoding of what they decode to.
  if (!verify(null, Buffer.from(`${parts[0]}.${parts[1]}`, 'ascii'), key, signature)) throw new JoseRefused('bad-signature', 'JWS signature does not verify');
  return { header, payload };
}

const uint32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const lengthPrefixed = (b: Buffer): Buffer => Buffer.concat([uint32(b.length), b]);

/** RFC 7518 §4.6.2: Concat KDF, SHA-256, one round (a 256-bit key), AlgorithmID = the alg value. */
function concatKdf(z: Buffer, alg: string, apu: Buffer, apv: Buffer): Buffer {
  const otherInfo = Buffer.concat([lengthPrefixed(Buffer.from(alg, 'ascii')), lengthPrefixed(apu), lengthPrefixed(apv), uint32(256)]);
  return createHash('sha256').update(uint32(1)).update(z).update(otherInfo).digest();
}

/** The sender's ephemeral key from the `epk` header: an X25519 public key and nothing else. */
function ephemeralKey(epk: unknown): KeyObject {
  const e = epk as Record<string, unknown> | null;
  if (typeof e !== 'object' || e === null || e.kty !== 'OKP' || e.crv !== 'X25519' || typeof e.x !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(e.x)) {
    throw new JoseRefused('malformed', 'JWE epk is not an X25519 public key (kty OKP, crv X25519, 32-byte x)');
  }
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: e.x }, format: 'jwk' });
}

/** Decrypts a compact JWE made with ECDH-ES+A256KW and A256GCM to `privateKey` (X25519). */
export function decryptCompactEcdhEs(jwe: string, privateKey: KeyObject): { header: Record<string, unknown>; plaintext: Uint8Array } {
  const parts = typeof jwe === 'string' ? jwe.split('.') : [];
  if (parts.length !== 5) throw new JoseRefused('malformed', `a compact JWE has 5 parts, this has ${parts.length}`);
  const header = decodeProtectedHeader(jwe);
  refuseCrit(header, 'JWE');
  if (header.alg !== 'ECDH-ES+A256KW') throw new JoseRefused('alg-not-allowed', `JWE alg ${JSON.stringify(header.alg)} is not allowed (only ECDH-ES+A256KW)`);
  if (header.enc !== 'A256GCM') throw new JoseRefused('alg-not-allowed', `JWE enc ${JSON.stringify(header.enc)} is not allowed (only A256GCM)`);
  if (Object.hasOwn(header, 'zip')) throw new JoseRefused('malformed', 'JWE zip (compression) is not supported');
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'x25519') throw new JoseRefused('malformed', `key for the JWE is not an X25519 private key (${privateKey.type} ${String(privateKey.asymmetricKeyType)})`);
  const apu = header.apu === undefined ? Buffer.alloc(0) : typeof header.apu === 'string' ? part(header.apu, 'JWE apu') : null;
  const apv = header.apv === undefined ? Buffer.alloc(0) : typeof header.apv === 'string' ? part(header.apv, 'JWE apv') : null;
  if (!apu || !apv) throw new JoseRefused('malformed', 'JWE apu or apv is not a base64url string');
  const wrapped = part(parts[1], 'JWE encrypted key');
  const iv = part(parts[2], 'JWE iv');
  const ciphertext = part(parts[3], 'JWE ciphertext');
  const tag = part(parts[4], 'JWE tag');
  if (wrapped.length !== 40) throw new JoseRefused('malformed', `JWE encrypted key is ${wrapped.length} bytes, an A256KW-wrapped 256-bit key 40`);
  if (iv.length !== 12) throw new JoseRefused('malformed', `JWE iv is ${iv.length} bytes, A256GCM's 12`);
  if (tag.length !== 16) throw new JoseRefused('malformed', `JWE tag is ${tag.length} bytes, A256GCM's 16`);

  const epk = ephemeralKey(header.epk);
  let z: Buffer;
  try {
    z = diffieHellman({ privateKey, publicKey: epk });
  } catch (err) {
    throw new JoseRefused('decrypt-failed', `JWE epk gives no shared secret with this key: ${(err as Error).message}`);
  }
  // A low-order epk gives an all-zero secret that anyone can compute (RFC 7748 §6.1); OpenSSL
  // already refuses it above, and this keeps the refusal whatever the library.
  if (z.every((b) => b === 0)) throw new JoseRefused('decrypt-failed', 'JWE epk gives an all-zero shared secret');
  const kek = concatKdf(z, 'ECDH-ES+A256KW', apu, apv);
  let cek: Buffer;
  try {
    // RFC 3394 with its default IV; a wrong KEK fails the unwrap's integrity check.
    const unwrap = createDecipheriv('id-aes256-wrap', kek, Buffer.from('A6A6A6A6A6A6A6A6', 'hex'));
    cek = Buffer.concat([unwrap.update(wrapped), unwrap.final()]);
  } catch {
    throw new JoseRefused('decrypt-failed', 'JWE encrypted key does not unwrap with this key');
  }
  try {
    const gcm = createDecipheriv('aes-256-gcm', cek, iv, { authTagLength: 16 });
    gcm.setAAD(Buffer.from(parts[0], 'ascii'));
    gcm.setAuthTag(tag);
    const plaintext = Buffer.concat([gcm.update(ciphertext), gcm.final()]);
    return { header, plaintext: new Uint8Array(plaintext.buffer, plaintext.byteOffset, plaintext.length) };
  } catch {
    throw new JoseRefused('decrypt-failed', 'JWE tag does not verify (ciphertext, iv, tag or header changed)');
  } finally {
    cek.fill(0);
  }
}
