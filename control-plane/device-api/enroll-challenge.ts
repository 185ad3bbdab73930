import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Enrollment challenges without a row (issue 17): a challenge is its issue time and 16 random bytes,
 * MAC'd (HMAC-SHA256) with a key only the control planes hold, bound to the serial it was asked
 * for. Issuing one costs no read and no write; a forged, altered or other serial's challenge does
 * not open. Single use is not here: the device row keeps the issue time of the challenge it last
 * enrolled with, and an enrollment needs a newer one (enrollment.ts).
 *
 * Layout (base64url, 76 characters): version 1 byte | issued at, ms, 8 bytes BE | nonce 16 | MAC 32.
 */

const VERSION = 1;
const NONCE = 16;
const BODY = 1 + 8 + NONCE;
const LENGTH = BODY + 32;
/** A challenge dated this far ahead of the verifier's clock is not one it trusts (control planes on other machines). */
const MAX_AHEAD_MS = 60_000;

function mac(key: Buffer, serial: string, body: Buffer): Buffer {
  return createHmac('sha256', key).update(`berth-enroll-challenge-v1\n${serial}\n`).update(body).digest();
}

/**
 * 16-byte nonces cut from one random fill of `batch` at a time: randomBytes(16) is a call into
 * OpenSSL per challenge, about as costly as the challenge's MAC (issue 17). The nonces are as
 * random; the pool lives with the routes that use it (a closure), not in the module.
 */
export function noncePool(batch = 256): () => Buffer {
  let pool = Buffer.alloc(0);
  let at = 0;
  return () => {
    if (at + NONCE > pool.length) {
      pool = randomBytes(NONCE * batch);
      at = 0;
    }
    at += NONCE;
    return pool.subarray(at - NONCE, at);
  };
}

export function issueChallenge(key: Buffer, serial: string, now: number, nonce: Buffer = randomBytes(NONCE)): string {
  if (nonce.length !== NONCE) throw new Error(`challenge nonce must be ${NONCE} bytes, got ${nonce.length}`);
  const body = Buffer.allocUnsafe(BODY);
  body[0] = VERSION;
  body.writeBigUInt64BE(BigInt(now), 1);
  nonce.copy(body, 9);
  return Buffer.concat([body, mac(key, serial, body)]).toString('base64url');
}

/** The issue time of a challenge this key issued for `serial`; null for anything else. */
export function openChallenge(key: Buffer, serial: string, challenge: string, now: number): number | null {
  const raw = Buffer.from(challenge, 'base64url');
  if (raw.length !== LENGTH || raw[0] !== VERSION || raw.toString('base64url') !== challenge) return null;
  const body = raw.subarray(0, BODY);
  if (!timingSafeEqual(raw.subarray(BODY), mac(key, serial, body))) return null;
  const issuedAt = Number(body.readBigUInt64BE(1));
  return issuedAt > now + MAX_AHEAD_MS ? null : issuedAt;
}
