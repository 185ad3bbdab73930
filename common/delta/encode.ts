import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { indexBase, isRegular, type BaseEntry, type BaseIndex } from './base-index.js';
import { ByteReader, type ByteStream } from './bytes.js';
import { encodeHeader, encodeVarint, FORMAT_VERSION, HEADER_BYTES, MAX_PATCH_BYTES, MAX_WINDOW_LOG, OP, type DeltaHeader } from './format.js';
import type { RandomAccessSource } from './source.js';
import { nextEntry, TarFormatError } from './tar.js';
import { PatchEncoder, usableDictionary, ZstdWriter } from './zstd.js';
import { ZstdThread } from './zstd-thread.js';

export interface EncodeOptions {
  base: RandomAccessSource;
  /** The target layer tar, front to back (e.g. a gunzip stream of the target blob). */
  target: ByteStream;
  /** Where the delta goes (created or truncated); the caller renames it into place. */
  outPath: string;
  /** zstd level of PATCH frames and of the operation stream. Default 19. */
  level?: number;
  /** Changed files above this many bytes (either version) travel as literals. At most MAX_PATCH_BYTES. */
  patchCap?: number;
  /** The base's index, when the caller has it already. */
  index?: BaseIndex;
}

export interface EncodeStats {
  /** Target bytes emitted by each kind of operation. */
  copied: number;
  literal: number;
  patched: number;
  /** Bytes of PATCH frames (their compressed size). */
  patchFrames: number;
  ops: number;
}

export interface EncodeResult {
  header: DeltaHeader;
  /** Size and sha256 of the delta file. */
  size: number;
  digest: string;
  stats: EncodeStats;
}

const LITERAL_FLUSH = 1 << 20;
const LARGE_CHUNK = 1 << 20;
/** Files this small go as literals: a PATCH frame's fixed cost is about this much. */
const MIN_PATCH_BYTES = 64;
const OUTER_WINDOW_LOG = 22;

/** Serializes operations into the zstd stream, merging adjacent COPYs and batching literals. */
class OpWriter {
  private copyStart = -1;
  private copyLen = 0;
  private lit: Buffer[] = [];
  private litLen = 0;
  readonly stats: EncodeStats = { copied: 0, literal: 0, patched: 0, patchFrames: 0, ops: 0 };

  constructor(private readonly z: ZstdWriter) {}

  async copy(offset: number, len: number): Promise<void> {
    if (len === 0) return;
    await this.flushLiteral();
    this.stats.copied += len;
    if (this.copyStart >= 0 && this.copyStart + this.copyLen === offset) {
      this.copyLen += len;
      return;
    }
    await this.flushCopy();
    this.copyStart = offset;
    this.copyLen = len;
  }

  async literal(bytes: Buffer): Promise<void> {
    if (bytes.length === 0) return;
    await this.flushCopy();
    this.stats.literal += bytes.length;
    this.lit.push(bytes);
    this.litLen += bytes.length;
    if (this.litLen >= LITERAL_FLUSH) await this.flushLiteral();
  }

  async patch(baseOffset: number, baseLen: number, newLen: number, frame: Buffer): Promise<void> {
    await this.flushCopy();
    await this.flushLiteral();
    this.stats.patched += newLen;
    this.stats.patchFrames += frame.length;
    this.stats.ops++;
    await this.z.write(Buffer.concat([Buffer.of(OP.patch), encodeVarint(baseOffset), encodeVarint(baseLen), encodeVarint(newLen), encodeVarint(frame.length)]));
    await this.z.write(frame);
  }

  async end(): Promise<void> {
    await this.flushCopy();
    await this.flushLiteral();
    this.stats.ops++;
    await this.z.write(Buffer.of(OP.end));
  }

  private async flushCopy(): Promise<void> {
    if (this.copyStart < 0) return;
    this.stats.ops++;
    await this.z.write(Buffer.concat([Buffer.of(OP.copy), encodeVarint(this.copyStart), encodeVarint(this.copyLen)]));
    this.copyStart = -1;
    this.copyLen = 0;
  }

  private async flushLiteral(): Promise<void> {
    if (this.litLen === 0) return;
    this.stats.ops++;
    await this.z.write(Buffer.concat([Buffer.of(OP.literal), encodeVarint(this.litLen), ...this.lit]));
    this.lit = [];
    this.litLen = 0;
  }
}

const sha256Hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Walks the target and chooses, span by span, how each byte reaches it. */
class Encoder {
  private readonly patcher: PatchEncoder;

  constructor(
    private readonly base: RandomAccessSource,
    private readonly index: BaseIndex,
    private readonly ops: OpWriter,
    thread: ZstdThread,
    level: number,
    private readonly cap: number,
  ) {
    this.patcher = new PatchEncoder(thread, level);
  }

  /** COPY when the base holds exactly these bytes at `offset`, LITERAL otherwise. */
  async matching(bytes: Buffer, offset: number | undefined): Promise<void> {
    if (bytes.length === 0) return;
    if (offset !== undefined && offset >= 0 && offset + bytes.length <= this.base.size) {
      const there = await this.base.read(offset, bytes.length);
      if (there.equals(bytes)) return this.ops.copy(offset, bytes.length);
    }
    return this.ops.literal(bytes);
  }

  /** A whole file's content (at most the cap): unchanged, moved, patched or new. */
  async content(bytes: Buffer, old: BaseEntry | undefined): Promise<void> {
    const hash = sha256Hex(bytes);
    if (old?.contentHash === hash) return this.ops.copy(old.contentStart, bytes.length);
    const elsewhere = this.index.byContent.get(hash);
    if (elsewhere !== undefined) return this.ops.copy(elsewhere, bytes.length);
    if (old && isRegular(old.type) && old.size > 0 && old.size <= this.cap && bytes.length >= MIN_PATCH_BYTES) {
      const dict = await this.base.read(old.contentStart, old.size);
      if (usableDictionary(dict)) {
        const frame = await this.patcher.encode(dict, bytes);
        if (frame.length < bytes.length) return this.ops.patch(old.contentStart, old.size, bytes.length, frame);
      }
    }
    return this.ops.literal(bytes);
  }

  /** A file over the cap, streamed: chunks equal to the same place in the old file are copied. */
  async large(r: ByteReader, size: number, path: string, old: BaseEntry | undefined): Promise<void> {
    let rel = 0;
    for await (const piece of r.span(size, `content of ${path}`, LARGE_CHUNK)) {
      const sameSpot = old && isRegular(old.type) && rel + piece.length <= old.size ? old.contentStart + rel : undefined;
      await this.matching(piece, sameSpot);
      rel += piece.length;
    }
  }
}

async function writeAll(fh: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

async function digestFile(fh: FileHandle, size: number): Promise<string> {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  for (let pos = 0; pos < size; ) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
    if (bytesRead === 0) throw new Error(`delta file ended at ${pos} of ${size} bytes while hashing it`);
    h.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  return 'sha256:' + h.digest('hex');
}

/**
 * Computes the delta that rebuilds `target` from `base`, streaming: memory holds the base's index,
 * one file of at most `patchCap` bytes (and its old version) and the zstd contexts, never a layer.
 * Throws TarFormatError when either side is not a tar it can walk.
 */
export async function encodeDelta(opts: EncodeOptions): Promise<EncodeResult> {
  const level = opts.level ?? 19;
  const cap = Math.min(opts.patchCap ?? MAX_PATCH_BYTES, MAX_PATCH_BYTES);
  const index = opts.index ?? (await indexBase(opts.base));
  const targetHash = createHash('sha256');
  let toSize = 0;
  async function* hashed(): AsyncGenerator<Uint8Array> {
    for await (const chunk of opts.target) {
      targetHash.update(chunk);
      toSize += chunk.length;
      yield chunk;
    }
  }
  const fh = await open(opts.outPath, 'w+');
  const thread = new ZstdThread();
  try {
    let written = HEADER_BYTES;
    const z = new ZstdWriter(thread, async (chunk) => {
      await writeAll(fh, chunk, written);
      written += chunk.length;
    }, level, Math.min(OUTER_WINDOW_LOG, MAX_WINDOW_LOG));
    const ops = new OpWriter(z);
    const enc = new Encoder(opts.base, index, ops, thread, level, cap);
    const r = ByteReader.of(hashed(), 'target layer', (m) => new TarFormatError(m));
    for (let e = await nextEntry(r); e; e = await nextEntry(r)) {
      const old = index.byPath.get(e.path);
      const sameHeaderSpan = old && old.contentStart - old.metaStart === e.meta.length ? old.metaStart : undefined;
      await enc.matching(e.meta, sameHeaderSpan);
      if (e.size > cap) await enc.large(r, e.size, e.path, old);
      else if (e.size > 0) await enc.content(await r.readExact(e.size, `content of ${e.path}`), old);
      await enc.matching(await r.readExact(e.padding, `padding of ${e.path}`), old ? old.contentStart + old.size : undefined);
    }
    const trailerStart = r.offset;
    for await (const piece of r.rest()) await enc.matching(piece, index.trailerStart + (r.offset - piece.length - trailerStart));
    await ops.end();
    await z.end();
    const header: DeltaHeader = { version: FORMAT_VERSION, from: index.diffId, to: 'sha256:' + targetHash.digest('hex'), fromSize: opts.base.size, toSize };
    await writeAll(fh, encodeHeader(header), 0);
    await fh.sync();
    return { header, size: written, digest: await digestFile(fh, written), stats: ops.stats };
  } finally {
    await thread.close();
    await fh.close();
  }
}
