import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dropPatch, patchKey, readCachedPatch, storePatch } from '../bench/baseline-cache.js';

const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;

describe('bench baseline cache', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-baseline-'));
    file = join(dir, 'made.zst');
    writeFileSync(file, 'patch bytes');
    delete process.env.BERTH_BENCH_RECOMPUTE;
  });
  afterEach(() => {
    delete process.env.BERTH_BENCH_RECOMPUTE;
    rmSync(dir, { recursive: true, force: true });
  });
  const meta = { seconds: 60, cpuSeconds: 58, peakBytes: 1 << 28, measuredAt: '2026-11-29T05:00:00Z', load: '1.0', tool: 'zstd v1.5.4' };

  it('keys by both diff_ids, the tool and its arguments, and refuses what is not a diff_id', () => {
    const k = patchKey({ tool: 'zstd v1.5.4', args: ['-19'], baseDiffId: A, targetDiffId: B });
    expect(patchKey({ tool: 'zstd v1.5.4', args: ['-19'], baseDiffId: B, targetDiffId: A })).not.toBe(k);
    expect(patchKey({ tool: 'zstd v1.5.5', args: ['-19'], baseDiffId: A, targetDiffId: B })).not.toBe(k);
    expect(patchKey({ tool: 'zstd v1.5.4', args: ['-18'], baseDiffId: A, targetDiffId: B })).not.toBe(k);
    expect(() => patchKey({ tool: 'zstd', args: [], baseDiffId: 'sha256:short', targetDiffId: B })).toThrow(/sha256:short.*not a sha256 diff_id/);
  });

  it('gives back a stored patch with its cost, and nothing once dropped or when recomputing is asked for', () => {
    const key = patchKey({ tool: 'zstd v1.5.4', args: ['-19'], baseDiffId: A, targetDiffId: B });
    expect(readCachedPatch(key, dir)).toBeNull();
    storePatch(key, file, meta, dir);
    const hit = readCachedPatch(key, dir);
    expect(hit).toMatchObject({ ...meta, bytes: 11 });
    expect(readFileSync(hit!.path, 'utf8')).toBe('patch bytes');
    process.env.BERTH_BENCH_RECOMPUTE = '1';
    expect(readCachedPatch(key, dir)).toBeNull();
    delete process.env.BERTH_BENCH_RECOMPUTE;
    dropPatch(key, dir);
    expect(readCachedPatch(key, dir)).toBeNull();
  });

  it('ignores an entry whose patch does not match its recorded size (torn or edited)', () => {
    const key = patchKey({ tool: 'zstd v1.5.4', args: ['-19'], baseDiffId: A, targetDiffId: B });
    storePatch(key, file, meta, dir);
    writeFileSync(join(dir, `${key}.zst`), 'patch bytes, truncated or grown');
    expect(readCachedPatch(key, dir)).toBeNull();
  });
});
