/**
 * Device tokens already verified, so a device polling with the same token for an hour pays for
 * one signature check, not one per poll. Keyed by the exact token string: a token that differs in
 * any byte is verified afresh. Only signature and claims are cached; revocation (status, epoch) is
 * still checked against the database on every request. Bounded: the oldest entries go first.
 */
export interface VerifiedDeviceToken {
  sub: string;
  epoch: number;
  /** Seconds since the epoch. */
  exp: number;
}

export class DeviceTokenCache {
  private readonly entries = new Map<string, VerifiedDeviceToken>();

  constructor(private readonly max: number) {}

  get(token: string, nowSec: number): VerifiedDeviceToken | undefined {
    const hit = this.entries.get(token);
    if (!hit) return undefined;
    if (hit.exp <= nowSec) {
      this.entries.delete(token);
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
    this.entries.set(token, claims);
  }

  /** Forgets every verified token (a signing key was revoked: its tokens must be checked again). */
  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
