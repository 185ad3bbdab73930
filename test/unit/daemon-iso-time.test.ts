import { describe, expect, it } from 'vitest';
import { isoTime } from '../../edge-daemon/iso-time.js';

describe('isoTime', () => {
  it('writes what toISOString writes, at the edges of fields and across the years', () => {
    const samples = [0, 1, 999, 1000, 59_999, Date.UTC(1999, 11, 31, 23, 59, 59, 999), Date.UTC(2000, 1, 29, 12), Date.UTC(2026, 10, 29, 8, 5, 7, 42), Date.UTC(0, 0, 1) - 0, Date.UTC(9999, 11, 31, 23, 59, 59, 999), -1, -62_167_219_200_000];
    for (let i = 0; i < 2000; i++) samples.push(Math.floor((i * 7_919_993_311) % 253_402_300_799_999));
    for (const ms of samples) expect(isoTime(ms)).toBe(new Date(ms).toISOString());
  });

  it('leaves extended years and invalid times to toISOString', () => {
    expect(isoTime(Date.UTC(10_000, 0, 1))).toBe('+010000-01-01T00:00:00.000Z');
    expect(isoTime(-62_167_219_200_001)).toBe('-000001-12-31T23:59:59.999Z');
    expect(() => isoTime(Number.NaN)).toThrow(RangeError);
  });

  it('is now by default', () => {
    const before = Date.now();
    const at = Date.parse(isoTime());
    expect(at).toBeGreaterThanOrEqual(before);
    expect(at).toBeLessThanOrEqual(Date.now());
  });
});
