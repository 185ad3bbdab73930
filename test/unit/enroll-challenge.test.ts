import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { issueChallenge, noncePool, openChallenge } from '../../control-plane/device-api/enroll-challenge.js';

describe('stateless enrollment challenges', () => {
  const key = randomBytes(32);
  const now = Date.parse('2026-11-29T05:00:00Z');

  it('opens to its issue time for the serial and key it was issued with, and to nothing else', () => {
    const c = issueChallenge(key, 'SN-1', now);
    expect(c).toMatch(/^[A-Za-z0-9_-]{76}$/);
    expect(openChallenge(key, 'SN-1', c, now + 1000)).toBe(now);
    expect(openChallenge(key, 'SN-2', c, now)).toBeNull();
    expect(openChallenge(randomBytes(32), 'SN-1', c, now)).toBeNull();
    expect(issueChallenge(key, 'SN-1', now)).not.toBe(c);
  });

  it('refuses an altered issue time, a truncated or padded one, and one dated ahead of the clock', () => {
    const c = issueChallenge(key, 'SN-1', now);
    const raw = Buffer.from(c, 'base64url');
    raw[8] ^= 1;
    expect(openChallenge(key, 'SN-1', raw.toString('base64url'), now)).toBeNull();
    expect(openChallenge(key, 'SN-1', c.slice(0, -2), now)).toBeNull();
    expect(openChallenge(key, 'SN-1', c + 'AA', now)).toBeNull();
    expect(openChallenge(key, 'SN-1', 'c'.repeat(43), now)).toBeNull();
    const ahead = issueChallenge(key, 'SN-1', now + 5 * 60_000);
    expect(openChallenge(key, 'SN-1', ahead, now)).toBeNull();
    expect(openChallenge(key, 'SN-1', ahead, now + 5 * 60_000)).toBe(now + 5 * 60_000);
  });

  it('takes its nonces from a pool: each 16 bytes, none repeated across refills, and no other length', () => {
    const next = noncePool(4);
    const seen = new Set<string>();
    for (let i = 0; i < 64; i++) {
      const n = next();
      expect(n).toHaveLength(16);
      seen.add(n.toString('hex'));
    }
    expect(seen.size).toBe(64);
    const a = issueChallenge(key, 'SN-1', now, next());
    const b = issueChallenge(key, 'SN-1', now, next());
    expect(a).not.toBe(b);
    expect(openChallenge(key, 'SN-1', b, now)).toBe(now);
    expect(() => issueChallenge(key, 'SN-1', now, Buffer.alloc(8))).toThrow(/nonce must be 16 bytes, got 8/);
  });
});
