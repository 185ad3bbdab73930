import { describe, expect, it } from 'vitest';
import { DeviceTokenCache, tokenKey } from '../../control-plane/device-api/token-cache.js';

describe('device token cache', () => {
  it('answers only for the exact token and only until it expires', () => {
    const cache = new DeviceTokenCache(10);
    cache.set('tok-a', { sub: 'dev_a', epoch: 0, exp: 100 });
    expect(cache.get('tok-a', 99)).toEqual({ sub: 'dev_a', epoch: 0, exp: 100 });
    expect(cache.get('tok-a ', 99)).toBeUndefined();
    expect(cache.get('tok-a', 100)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('drops the oldest entry when full, and stores nothing when disabled', () => {
    const cache = new DeviceTokenCache(2);
    cache.set('t1', { sub: '1', epoch: 0, exp: 100 });
    cache.set('t2', { sub: '2', epoch: 0, exp: 100 });
    cache.set('t3', { sub: '3', epoch: 0, exp: 100 });
    expect([cache.get('t1', 0), cache.get('t2', 0)?.sub, cache.get('t3', 0)?.sub]).toEqual([undefined, '2', '3']);
    const off = new DeviceTokenCache(0);
    off.set('t', { sub: 'x', epoch: 0, exp: 100 });
    expect(off.get('t', 0)).toBeUndefined();
  });
});

describe('device token cache keys', () => {
  it('keeps a digest of each token, never the token itself', () => {
    const cache = new DeviceTokenCache(10);
    const token = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJkZXZfMSJ9.c2lnbmF0dXJl';
    cache.set(token, { sub: 'dev_1', epoch: 0, exp: 100 });
    const keys = [...(cache as unknown as { entries: Map<string, unknown> }).entries.keys()];
    expect(keys).toEqual([tokenKey(token)]);
    expect(keys[0]).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(keys[0]).not.toContain(token.slice(0, 20));
    expect(tokenKey(token + 'x')).not.toBe(keys[0]);
  });
});
