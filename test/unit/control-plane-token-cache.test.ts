import { describe, expect, it } from 'vitest';
import { DeviceTokenCache } from '../../control-plane/device-api/token-cache.js';

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
