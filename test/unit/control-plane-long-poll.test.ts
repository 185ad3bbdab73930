import { describe, expect, it } from 'vitest';
import { longPollMs } from '../../control-plane/device-api/routes.js';

describe('longPollMs', () => {
  it('waits what was asked, capped by the server, less up to a fifth at random', () => {
    expect(longPollMs(30, 60, () => 0)).toBe(30_000);
    expect(longPollMs(30, 60, () => 0.5)).toBe(27_000);
    expect(longPollMs(30, 60, () => 0.999)).toBeCloseTo(24_006, 0);
    expect(longPollMs(600, 60, () => 0)).toBe(60_000);
    expect(longPollMs(0, 60, () => 0.7)).toBe(0);
  });

  it('spreads polls opened together over the last fifth of the wait, never past it', () => {
    const waits = Array.from({ length: 1000 }, () => longPollMs(60, 60));
    expect(Math.max(...waits)).toBeLessThanOrEqual(60_000);
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(48_000);
    expect(new Set(waits.map((w) => Math.floor(w / 1000))).size).toBeGreaterThan(6);
  });
});
