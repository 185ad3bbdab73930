import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compress } from 'zstd-napi';
import { applyDelta, bufferSource, DeltaError, encodeDelta, TarFormatError, type EncodeOptions } from '../../common/delta/index.js';
import { encodeHeader, encodeVarint, FORMAT_VERSION, MAX_PATCH_BYTES, OP } from '../../common/delta/format.js';
import { gnuTar, type TreeFile } from '../rig/gnu-tar.js';
import { pseudoRandomBytes } from '../rig/forge.js';
import { tarChunks } from '../rig/tar.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-delta-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const tmp = (name: string): string => join(dir, `${n++}-${name}`);
const sha = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

async function encode(base: Buffer, target: Buffer, opts: Partial<EncodeOptions> = {}) {
  const outPath = tmp('delta');
  const result = await encodeDelta({ base: bufferSource(base), target: [target], outPath, level: 3, ...opts });
  return { ...result, path: outPath, bytes: readFileSync(outPath) };
}

async function apply(base: Buffer, delta: Buffer, expectDiffId?: string) {
  const outPath = tmp('out.tar');
  const result = await applyDelta({ base: bufferSource(base), delta: [delta], outPath, expectDiffId });
  return { ...result, bytes: readFileSync(outPath), outPath };
}

async function roundTrip(base: Buffer, target: Buffer, opts: Partial<EncodeOptions> = {}) {
  const d = await encode(base, target, opts);
  expect(d.header).toMatchObject({ version: FORMAT_VERSION, from: sha(base), to: sha(target), fromSize: base.length, toSize: target.length });
  expect(d.digest).toBe(sha(d.bytes));
  const out = await apply(base, d.bytes, sha(target));
  expect(out.bytes.equals(target)).toBe(true);
  expect(out.diffId).toBe(sha(target));
  expect(out.size).toBe(target.length);
  return d;
}

/** Text that changes a little between versions, as config files and scripts do. */
const text = (seed: string, lines: number): string => Array.from({ length: lines }, (_, i) => `line ${i} of ${seed}: ${'x'.repeat(i % 40)}`).join('\n');
const longDir = `usr/share/${'very-long-directory-name-'.repeat(6)}`;

function v1(): Record<string, TreeFile> {
  return {
    'bin/tool': { content: pseudoRandomBytes(200_000, 'tool-v1'), mode: 0o755 },
    'bin/alias': { hardlink: 'bin/tool' },
    'bin/sh': { symlink: 'tool' },
    'etc/app.conf': text('conf', 200),
    'etc/removed.conf': 'going away\n',
    'var/lib/app/data.bin': pseudoRandomBytes(50_000, 'data'),
    [`${longDir}/${'n'.repeat(120)}.txt`]: 'long name v1\n',
    'opt/old/file': 'old\n',
    'empty': '',
  };
}

function v2(): Record<string, TreeFile> {
  const tool = pseudoRandomBytes(200_000, 'tool-v1');
  tool.write('patched!', 1000);
  tool.write('patched again', 150_000);
  const files: Record<string, TreeFile> = {
    ...v1(),
    'bin/tool': { content: tool, mode: 0o755 },
    'etc/app.conf': text('conf', 200).replace('line 50', 'LINE fifty'),
    'etc/new.conf': text('new', 30),
    'opt/.wh..wh..opq': '',
    'opt/new/file': 'new\n',
    'etc/.wh.removed.conf': '',
    'var/lib/app/moved.bin': pseudoRandomBytes(50_000, 'data'),
    [`${longDir}/${'n'.repeat(120)}.txt`]: 'long name v2\n',
  };
  delete files['etc/removed.conf'];
  delete files['opt/old/file'];
  delete files['var/lib/app/data.bin'];
  return files;
}

/** GNU tar takes a moment per archive: each release is written once per file. */
let tars: { base: Buffer; target: Buffer } | undefined;
function pair(): { base: Buffer; target: Buffer } {
  tars ??= { base: gnuTar(v1()), target: gnuTar(v2()) };
  return tars;
}

describe('layer delta format', () => {
  it('round-trips a release byte for byte: changed, added, removed and moved files, whiteouts, hard links, symlinks, PAX long names', async () => {
    const { base, target } = pair();
    expect(target.includes(Buffer.from('.wh..wh..opq'))).toBe(true);
    expect(target.includes(Buffer.from('path='))).toBe(true);
    const d = await roundTrip(base, target);
    expect(d.stats.patched).toBeGreaterThan(200_000);
    // The moved file and unchanged entries are copied from the base; the changed binary is patched.
    expect(d.stats.copied).toBeGreaterThan(50_000);
    expect(d.size).toBeLessThan(target.length / 20);
  });

  it('round-trips GNU-format tars (long-name records) and forge (Go-style ustar) tars', async () => {
    await roundTrip(gnuTar(v1(), { format: 'gnu' }), gnuTar(v2(), { format: 'gnu' }));
    const forge = (files: Record<string, string | Buffer>) => Buffer.concat([...tarChunks(Object.entries(files).map(([path, c]) => ({ type: 'file' as const, path, content: Buffer.from(c), mode: 0o644 })))]);
    const d = await roundTrip(forge({ 'a/x': 'same', 'a/y': pseudoRandomBytes(30_000, 'y') }), forge({ 'a/x': 'same', 'a/y': pseudoRandomBytes(30_000, 'y2'), 'a/z': 'new' }));
    expect(d.stats.copied).toBeGreaterThan(0);
  });

  it('builds from an empty base: a zero-byte file and an empty tar', async () => {
    const { target } = pair();
    const d = await roundTrip(Buffer.alloc(0), target);
    expect(d.stats.copied).toBe(0);
    await roundTrip(gnuTar({}), target);
    await roundTrip(target, gnuTar({}));
  });

  it('copies a file over the patch cap chunk by chunk where it did not change', async () => {
    const big = pseudoRandomBytes(3 << 20, 'big');
    const changed = Buffer.from(big);
    changed.write('changed', (2 << 20) + 5);
    const d = await roundTrip(gnuTar({ 'big.bin': big }), gnuTar({ 'big.bin': changed }), { patchCap: 1 << 20 });
    expect(d.stats.patched).toBe(0);
    expect(d.stats.literal).toBeLessThan((1 << 20) + 64 * 1024);
    expect(d.stats.copied).toBeGreaterThan(2 << 20);
  });

  it('refuses a delta with any flipped byte, and writes nothing', async () => {
    const { base, target } = pair();
    const d = await encode(base, target);
    const spots = [0, 9, 20, 50, 80, 95, 96, 100, Math.floor(d.bytes.length / 2), d.bytes.length - 5, d.bytes.length - 1];
    for (const spot of spots) {
      const bad = Buffer.from(d.bytes);
      bad[spot] ^= 0x01;
      const outPath = tmp('flipped.tar');
      await expect(applyDelta({ base: bufferSource(base), delta: [bad], outPath }), `flip at ${spot}`).rejects.toBeInstanceOf(DeltaError);
      expect(existsSync(outPath)).toBe(false);
    }
    expect(readdirSync(dir).filter((f) => f.endsWith('.partial'))).toEqual([]);
  });

  it('refuses a truncated delta with a message that says so', async () => {
    const { base, target } = pair();
    const d = await encode(base, target);
    for (const len of [0, 50, 96, 97, 200, d.bytes.length - 1]) {
      await expect(apply(base, d.bytes.subarray(0, len)), `cut at ${len}`).rejects.toThrow(/truncated/);
    }
  });

  it('refuses the wrong base and a result that is not the expected diff_id', async () => {
    const { base, target } = pair();
    const d = await encode(base, target);
    await expect(apply(Buffer.concat([base, Buffer.alloc(512)]), d.bytes)).rejects.toThrow(/wrong base/);
    const sameSize = Buffer.from(base);
    sameSize[base.indexOf(Buffer.from('line 7 of conf'))] ^= 1;
    await expect(apply(sameSize, d.bytes)).rejects.toThrow(/hashes to sha256:.* but the delta promises/);
    await expect(apply(base, d.bytes, sha(base))).rejects.toThrow(/not the expected/);
  });

  it('reads the delta as a stream in small pieces', async () => {
    const { base, target } = pair();
    const d = await encode(base, target);
    const outPath = tmp('streamed.tar');
    await applyDelta({ base: bufferSource(base), delta: createReadStream(d.path, { highWaterMark: 7 }), outPath });
    expect(readFileSync(outPath).equals(target)).toBe(true);
  });

  it('refuses a target that is not a tar', async () => {
    await expect(encode(pair().base, Buffer.from('not a tar at all'.repeat(64)))).rejects.toBeInstanceOf(TarFormatError);
  });
});

/** Hand-made deltas: every bound the applier checks. */
describe('layer delta bounds', () => {
  const base = Buffer.from('0123456789'.repeat(100));
  const target = Buffer.concat([base.subarray(0, 10), Buffer.from('new')]);
  const handMade = (ops: Buffer[], h: { toSize?: number; fromSize?: number } = {}): Buffer =>
    Buffer.concat([
      encodeHeader({ version: FORMAT_VERSION, from: sha(base), to: sha(target), fromSize: h.fromSize ?? base.length, toSize: h.toSize ?? target.length }),
      compress(Buffer.concat(ops)),
    ]);
  const op = (code: number, ...ints: number[]): Buffer => Buffer.concat([Buffer.of(code), ...ints.map(encodeVarint)]);
  const lit = (s: string): Buffer => Buffer.concat([op(OP.literal, s.length), Buffer.from(s)]);

  it('applies a well-formed hand-made delta', async () => {
    const out = await apply(base, handMade([op(OP.copy, 0, 10), lit('new'), op(OP.end)]));
    expect(out.bytes.equals(target)).toBe(true);
  });

  it('refuses out-of-range offsets, overlong output, oversized PATCHes and malformed operations', async () => {
    const cases: [Buffer[], RegExp][] = [
      [[op(OP.copy, 995, 10), op(OP.end)], /reads base bytes \[995, 1005\) outside its 1000 bytes/],
      [[op(OP.copy, Number.MAX_SAFE_INTEGER, 1), op(OP.end)], /outside its 1000 bytes/],
      [[op(OP.copy, 0, 14), op(OP.end)], /past the target's 13 bytes/],
      [[lit('this is far too long'), op(OP.end)], /past the target's 13 bytes/],
      [[op(OP.copy, 0, 0), op(OP.end)], /COPY of 0 bytes/],
      [[op(OP.patch, 0, MAX_PATCH_BYTES + 1, 13, 10), op(OP.end)], /outside its 1000 bytes|over the .* cap/],
      [[op(OP.patch, 0, 100, 13, 10_000_000), op(OP.end)], /declares a base of 100 and a frame of 10000000 bytes/],
      [[op(OP.patch, 0, 100, 13, 5), Buffer.from('junk!'), op(OP.end)], /PATCH at output byte 0: its frame/],
      [[op(9)], /unknown operation 9/],
      [[op(OP.copy, 0, 10), lit('new')], /truncated/],
      [[op(OP.copy, 0, 10), lit('new'), op(OP.end), Buffer.from('extra')], /bytes follow its END/],
      [[op(OP.copy, 0, 10), op(OP.end)], /ended after 10 of the target's 13 bytes/],
      [[Buffer.of(OP.copy, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)], /varint longer/],
    ];
    for (const [ops, message] of cases) {
      await expect(apply(base, handMade(ops)), String(message)).rejects.toThrow(message);
    }
  });

  it('refuses a delta of another format version or with bad magic', async () => {
    const good = handMade([op(OP.copy, 0, 10), lit('new'), op(OP.end)]);
    const header = { version: 2, from: sha(base), to: sha(target), fromSize: base.length, toSize: target.length };
    await expect(apply(base, Buffer.concat([encodeHeader(header), good.subarray(96)]))).rejects.toThrow(/version 2 is not supported/);
    const flipped = Buffer.from(good);
    flipped.writeUInt16BE(2, 8);
    await expect(apply(base, flipped)).rejects.toThrow(/header is corrupt/);
    await expect(apply(base, Buffer.concat([Buffer.from('GARBAGE!'), good.subarray(8)]))).rejects.toThrow(/bad magic/);
  });
});
