import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BIG_LAYER_BYTES, buildImage, buildLayer, busyboxLayer, pseudoRandomBytes, variant, type LayerSpec } from '../rig/forge.js';

const sha = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

function spec(): LayerSpec[] {
  return [
    { files: { '/app/big.bin': pseudoRandomBytes(300_000, 'big'), '/app/run.sh': { content: '#!/bin/sh\necho hi\n', mode: 0o755 } } },
    { files: { '/etc/app.conf': 'a=1\n', '/app/link': { symlink: 'run.sh' } } },
  ];
}

describe('forge', () => {
  it('builds the same bytes for the same spec', async () => {
    const a = await buildImage({ layers: spec(), config: { Cmd: ['/app/run.sh'] } });
    const b = await buildImage({ layers: spec(), config: { Cmd: ['/app/run.sh'] } });
    expect(b.manifestDigest).toBe(a.manifestDigest);
    expect(b.config.digest).toBe(a.config.digest);
    expect(b.layers.map((l) => l.digest)).toEqual(a.layers.map((l) => l.digest));
    expect(a.manifestDigest).toBe(sha(a.manifestBytes));
  });

  it('records digests that match the blobs, and diff ids that match the uncompressed tars', async () => {
    const image = await buildImage({ layers: spec() });
    const config = JSON.parse(image.config.bytes.toString('utf8'));
    expect(config.architecture).toBe('amd64');
    expect(config.os).toBe('linux');
    for (const [i, layer] of image.layers.entries()) {
      expect(layer.digest).toBe(sha(layer.blob));
      expect(layer.size).toBe(layer.blob.length);
      expect(layer.diffId).toBe(sha(gunzipSync(layer.blob)));
      expect(config.rootfs.diff_ids[i]).toBe(layer.diffId);
      expect(image.manifest.layers[i].digest).toBe(layer.digest);
    }
    expect(image.manifest.config.digest).toBe(sha(image.config.bytes));
  });

  it('writes a tar that GNU tar extracts with modes, symlinks and parent directories', async () => {
    const layer = await buildLayer({
      files: {
        '/a/b/c.txt': 'c',
        '/a/exe': { content: 'x', mode: 0o750 },
        '/a/ln': { symlink: 'b/c.txt' },
        [`/deep/${'d'.repeat(90)}/${'e'.repeat(90)}/f`]: 'long',
      },
    });
    const dir = mkdtempSync(join(tmpdir(), 'forge-test-'));
    try {
      writeFileSync(join(dir, 'l.tar.gz'), layer.blob);
      const listing = execFileSync('tar', ['-tvzf', join(dir, 'l.tar.gz')], { encoding: 'utf8' });
      expect(listing).toMatch(/root\/root .* 1970-01-01 00:00 a\/$/m);
      execFileSync('tar', ['-xzf', 'l.tar.gz'], { cwd: dir });
      expect(readFileSync(join(dir, 'a/b/c.txt'), 'utf8')).toBe('c');
      expect(statSync(join(dir, 'a/exe')).mode & 0o7777).toBe(0o750);
      expect(readlinkSync(join(dir, 'a/ln'))).toBe('b/c.txt');
      expect(readFileSync(join(dir, `deep/${'d'.repeat(90)}/${'e'.repeat(90)}/f`), 'utf8')).toBe('long');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('variant changes exactly the one layer that holds the changed file', async () => {
    const layers = spec();
    const v1 = await buildImage({ layers });
    const v2 = await buildImage({ layers: [variant(layers[0], { path: '/app/big.bin', bytes: 4096, seed: 'v2' }), layers[1]] });
    expect(v2.layers[0].digest).not.toBe(v1.layers[0].digest);
    expect(v2.layers[1].digest).toBe(v1.layers[1].digest);
    expect(v2.manifestDigest).not.toBe(v1.manifestDigest);
    const before = layers[0].files['/app/big.bin'] as Buffer;
    const after = variant(layers[0], { path: '/app/big.bin', bytes: 4096, seed: 'v2' }).files['/app/big.bin'] as Buffer;
    expect(after.length).toBe(before.length);
    let differing = 0;
    for (let i = 0; i < before.length; i++) if (before[i] !== after[i]) differing++;
    expect(differing).toBeGreaterThan(4000);
    expect(differing).toBeLessThanOrEqual(4096);
  });

  it('makes seed-determined, incompressible pseudo-random bytes', () => {
    expect(pseudoRandomBytes(1000, 's').equals(pseudoRandomBytes(1000, 's'))).toBe(true);
    expect(pseudoRandomBytes(1000, 's').equals(pseudoRandomBytes(1000, 't'))).toBe(false);
    expect(pseudoRandomBytes(20_000_000, 's').subarray(0, 1000).equals(pseudoRandomBytes(1000, 's'))).toBe(true);
  });

  it('lays out busybox with its applets', () => {
    const layer = busyboxLayer();
    expect(layer.files['/bin/sh']).toEqual({ symlink: 'busybox' });
    expect(layer.files['/bin/httpd']).toEqual({ symlink: 'busybox' });
    expect((layer.files['/bin/busybox'] as { mode: number }).mode).toBe(0o755);
    expect(layer.files['/etc/passwd']).toMatch(/^nobody:x:65534:/m);
  });

  it('stores big layers as valid gzip without deflating, unless a level is asked for', async () => {
    const files = { '/big.bin': pseudoRandomBytes(BIG_LAYER_BYTES + 1, 'stored') };
    const stored = await buildLayer({ files });
    expect(stored.diffId).toBe(sha(gunzipSync(stored.blob)));
    const small = await buildLayer({ files: { '/a.txt': 'a'.repeat(100_000) } });
    expect(small.size).toBeLessThan(10_000);
    const forcedStored = await buildLayer({ files: { '/a.txt': 'a'.repeat(100_000) }, gzipLevel: 0 });
    expect(forcedStored.size).toBeGreaterThan(100_000);
    expect(forcedStored.diffId).toBe(small.diffId);
  });
});
