import { hash } from 'node:crypto';

/**
 * Device tokens already verified, so a device polling with the same token for an hour pays for
 * one signature check, not one per poll. Keyed by the SHA-256 of the exact token: a token that
 * differs in any byte is verified afresh, and the cache holds 32 bytes per device instead of the
 * token itself (a few hundred bytes; 100,000 devices polling), so a heap snapshot or core dump
 * holds no usable device token. Only signature and claims are cached; revocation (status, epoch)
 * is still checked against the database on every request. Bounded: the oldest entries go first.
 */
export interface VerifiedDeviceToken {
  sub: string;
  epoch: number;
  /** Seconds since the epoch. */
  exp: number;
}

/** The cache key of a token: its SHA-256 (base64; one-shot, no Hash object per request). */
export function tokenKey(token: string): string {
  return hash('sha256', token, 'base64');
}

export class DeviceTokenCache {
  private readonly entries = new Map<string, VerifiedDeviceToken>();

  constructor(private readonly max: number) {}

  get(token: string, nowSec: number): VerifiedDeviceToken | undefined {
    if (this.max <= 0 || this.entries.size === 0) return undefined;
    const key = tokenKey(token);
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    if (hit.exp <= nowSec) {
      this.entries.delete(key);
      return undefined;
    }
    return hit;
  }

  set(token: string, claims: VerifiedDeviceToken): void {
    if (this.max <= 0) return;
    if (this.entries.size >= this.max) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(tokenKey(token), claims);
  }

  /** Forgets every verified token (a signing key was revoked: its tokens must be checked again). */
  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
