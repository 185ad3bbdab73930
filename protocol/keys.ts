import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Ed25519 keys as the field exchanges them: a manufacturer records a device's public key as the
 * base64url of its 32 raw bytes (the JWK `x`), or as a PEM. Private keys live in PKCS#8 PEM files, 0600.
 */
export function publicKeyToRaw(key: KeyObject): string {
  return rawOkpPublicKey(key, 'ed25519');
}

/**
 * The 32 raw bytes of an Ed25519 or X25519 public key, base64url: the tail of its SPKI DER.
 * Not through a JWK export: Node 20's JWK export of an OKP key holds the key's mutex while it
 * allocates, and a garbage collection at that moment that frees a key-generation job locks the
 * same mutex, so the thread deadlocks (seen importing 10,001 freshly generated keys).
 */
export function rawOkpPublicKey(key: KeyObject, type: 'ed25519' | 'x25519'): string {
  if (key.type !== 'public' || key.asymmetricKeyType !== type) throw new Error(`not an ${type === 'ed25519' ? 'Ed25519' : 'X25519'} public key`);
  const der = key.export({ format: 'der', type: 'spki' });
  // SPKI of a 32-byte OKP key: a 12-byte header (SEQUENCE, algorithm OID, BIT STRING) and the key.
  if (der.length !== 44) throw new Error(`unexpected ${type} SPKI length ${der.length}`);
  return der.subarray(12).toString('base64url');
}

/** Accepts a base64url raw 32-byte key or a PEM (SPKI); throws naming what is wrong. */
export function importPublicKey(text: string): KeyObject {
  const t = text.trim();
  if (t.startsWith('-----BEGIN')) {
    const key = createPublicKey(t);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`public key is ${key.asymmetricKeyType}, expected ed25519`);
    return key;
  }
  if (!/^[A-Za-z0-9_-]{43}$/.test(t)) throw new Error('public key must be 43 base64url characters (32 raw Ed25519 bytes) or a PEM');
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: t }, format: 'jwk' });
}

export function importPrivateKey(pem: string): KeyObject {
  const key = createPrivateKey(pem);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`private key is ${key.asymmetricKeyType}, expected ed25519`);
  return key;
}

export async function loadPrivateKey(path: string): Promise<KeyObject> {
  return importPrivateKey(await readFile(path, 'utf8'));
}

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function generateEd25519(): KeyPair {
  return generateKeyPairSync('ed25519');
}

/** Writes FILE (private, 0600) and FILE.pub (PEM); returns the raw base64url public key. */
export async function writeKeyPair(path: string, pair: KeyPair = generateEd25519()): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  const pem = pair.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  await writeFile(path, pem, { mode: 0o600, flag: 'wx' });
  try {
    await chmod(path, 0o600);
    // 'wx' here too: silently replacing FILE.pub would leave a public key that no longer matches its private key.
    await writeFile(path + '.pub', pair.publicKey.export({ format: 'pem', type: 'spki' }) as string, { mode: 0o644, flag: 'wx' });
  } catch (err) {
    await rm(path, { force: true });
    throw err;
  }
  return publicKeyToRaw(pair.publicKey);
}

export function signBytes(privateKey: KeyObject, data: Uint8Array | string): string {
  return sign(null, typeof data === 'string' ? Buffer.from(data) : data, privateKey).toString('base64url');
}

export function verifyBytes(publicKey: KeyObject, data: Uint8Array | string, signature: string): boolean {
  try {
    return verify(null, typeof data === 'string' ? Buffer.from(data) : data, publicKey, Buffer.from(signature, 'base64url'));
  } catch {
    return false;
  }
}
