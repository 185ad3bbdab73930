import { CompactEncrypt } from 'jose';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { decodeProtectedHeader, decryptCompactEcdhEs } from './jose-open.js';
import { rawOkpPublicKey } from './keys.js';

/**
 * A secret value as the deployment document carries it: a compact JWE (ECDH-ES+A256KW, A256GCM)
 * addressed to one device's X25519 key. The protected header (the AEAD's associated data) names
 * the device, the secret and its version, and its `kid` is the recipient's public key, so a JWE
 * moved to another device, secret or document is refused with a reason instead of a vague failure.
 */

export const SECRET_JWE_TYP = 'berth-secret+jwe';

/** An X25519 public key as the device sends it: the base64url of its 32 raw bytes (the JWK `x`). */
export function importEncryptionKey(raw: string): KeyObject {
  if (!/^[A-Za-z0-9_-]{43}$/.test(raw)) throw new Error('encryption key must be 43 base64url characters (32 raw X25519 bytes)');
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: raw }, format: 'jwk' });
}

export function encryptionKeyToRaw(key: KeyObject): string {
  return rawOkpPublicKey(key.type === 'private' ? createPublicKey(key) : key, 'x25519');
}

export interface SecretAddress {
  device: string;
  name: string;
  /** Opaque id of the secret's version (changes on every rotation). */
  ref: string;
}

export async function sealForDevice(value: Uint8Array, recipientRaw: string, to: SecretAddress): Promise<string> {
  return new CompactEncrypt(value)
    .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', typ: SECRET_JWE_TYP, kid: recipientRaw, 'berth-device': to.device, 'berth-secret': to.name, 'berth-ref': to.ref })
    .encrypt(importEncryptionKey(recipientRaw));
}

/** Decrypts a secret addressed to this device; every way it can be someone else's is an error naming it. */
export async function openForDevice(jwe: string, privateKey: KeyObject, ownRaw: string, at: SecretAddress): Promise<Uint8Array> {
  let header: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(jwe);
  } catch (err) {
    throw new Error(`secret ${at.name} is not a JWE: ${(err as Error).message}`);
  }
  if (header.typ !== SECRET_JWE_TYP) throw new Error(`secret ${at.name}: typ ${String(header.typ)} is not ${SECRET_JWE_TYP}`);
  if (header['berth-device'] !== at.device) throw new Error(`secret ${at.name} is addressed to device ${String(header['berth-device'])}, this device is ${at.device}`);
  if (header.kid !== ownRaw) throw new Error(`secret ${at.name} is addressed to another encryption key (${String(header.kid)}) than this device's (${ownRaw})`);
  if (header['berth-secret'] !== at.name || header['berth-ref'] !== at.ref) throw new Error(`secret ${at.name}@${at.ref} carries the JWE of ${String(header['berth-secret'])}@${String(header['berth-ref'])}`);
  try {
    // Encrypting stays with jose (control plane); decrypting is node:crypto (jose-open.ts), so the gateway loads no jose.
    return decryptCompactEcdhEs(jwe, privateKey).plaintext;
  } catch (err) {
    throw new Error(`secret ${at.name} does not decrypt with this device's key: ${(err as Error).message}`);
  }
}
