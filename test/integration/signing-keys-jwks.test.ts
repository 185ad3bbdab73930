import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fileContext } from './file-context.js';

/**
 * The JWKS the control plane hands out (every enrollment answer carries it), built once and kept
 * until a retired key's retention ends or the keys are loaded again (control-plane/signing-keys.ts).
 * Real libSQL file; the context's keys retire after 1,000 ms.
 */
describe('the JWKS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-jwks-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is the same set until a rotation is loaded, keeps the retired key for its retention only, and cannot be changed by a caller', async () => {
    const { ctx, close } = await fileContext(dir, 'berth.db');
    try {
      const t0 = Date.now();
      await ctx.db.transaction((tx) => ctx.keys.ensure(tx, t0));
      await ctx.keys.load();
      const first = ctx.keys.jwks(t0);
      expect(first.keys.map((k) => k.kid)).toEqual([ctx.keys.active().kid]);
      expect(ctx.keys.jwks(t0 + 10)).toBe(first);
      expect(() => (first.keys as unknown[]).push({})).toThrow();

      const rotated = await ctx.db.transaction((tx) => ctx.keys.rotate(tx, t0 + 100));
      // Not loaded yet: what this process signs with and hands out is unchanged.
      expect(ctx.keys.jwks(t0 + 200)).toBe(first);
      await ctx.keys.load();
      const both = ctx.keys.jwks(t0 + 200);
      expect(both.keys.map((k) => k.kid).sort()).toEqual([rotated.kid, ...rotated.retired].sort());
      expect(ctx.keys.jwks(t0 + 1099)).toBe(both);
      // The retired key's retention (1,000 ms from t0 + 100) has ended.
      expect(ctx.keys.jwks(t0 + 1100).keys.map((k) => k.kid)).toEqual([rotated.kid]);
      // A clock that went back gets the set of its own time, not the kept one.
      expect(ctx.keys.jwks(t0 + 150).keys.map((k) => k.kid).sort()).toEqual([rotated.kid, ...rotated.retired].sort());
    } finally {
      close();
    }
  });
});
