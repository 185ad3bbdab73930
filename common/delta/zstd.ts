import binding from 'zstd-napi/binding.js';
import { DeltaError, MAX_PATCH_BYTES, MAX_WINDOW_LOG, PATCH_FRAME_SLACK, ZSTD_DICT_MAGIC } from './format.js';

const { CCtx, DCtx, CParameter, DParameter, EndDirective, ResetDirective } = binding;

const OUT_CHUNK = 256 << 10;
const IN_BATCH = 128 << 10;

/**
 * One zstd stream written piece by piece; compressed bytes go to `emit` as they come. Inputs
 * are batched so that many small operations cost one compression call.
 */
export class ZstdWriter {
  private readonly cctx = new CCtx();
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly emit: (chunk: Buffer) => Promise<void>, level: number, windowLog: number) {
    this.cctx.setParameter(CParameter.compressionLevel, level);
    this.cctx.setParameter(CParameter.windowLog, windowLog);
    this.cctx.setParameter(CParameter.checksumFlag, 1);
  }

  async write(data: Buffer): Promise<void> {
    if (data.length === 0) return;
    this.pending.push(data);
    this.pendingBytes += data.length;
    if (this.pendingBytes >= IN_BATCH) await this.drain(false);
  }

  async end(): Promise<void> {
    await this.drain(true);
  }

  private async drain(last: boolean): Promise<void> {
    let src = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    const directive = last ? EndDirective.end : EndDirective.continue;
    for (;;) {
      const out = Buffer.allocUnsafe(OUT_CHUNK);
      const [remaining, produced, consumed] = this.cctx.compressStream2(out, src, directive);
      src = src.subarray(consumed);
      if (produced > 0) await this.emit(out.subarray(0, produced));
      if (last ? remaining === 0 : src.length === 0) return;
    }
  }
}

/**
 * Decompresses a zstd stream as it arrives. Refuses windows above 2^MAX_WINDOW_LOG (memory) and a
 * stream that stops inside a frame (truncated).
 */
export async function* zstdDecompress(input: AsyncIterable<Uint8Array>, name: string): AsyncGenerator<Buffer> {
  const dctx = new DCtx();
  dctx.setParameter(DParameter.windowLogMax, MAX_WINDOW_LOG);
  let inFrame = false;
  let seen = 0;
  for await (const chunk of input) {
    let src = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    seen += src.length;
    while (src.length > 0) {
      const out = Buffer.allocUnsafe(OUT_CHUNK);
      let result: [number, number, number];
      try {
        result = dctx.decompressStream(out, src);
      } catch (err) {
        throw new DeltaError(`${name} is corrupt: zstd says "${(err as Error).message}" (within its first ${seen} compressed bytes)`);
      }
      const [ret, produced, consumed] = result;
      src = src.subarray(consumed);
      // 0 means a frame just ended and was flushed out; idle calls return a hint, not a state.
      if (consumed > 0 || produced > 0) inFrame = ret !== 0;
      if (produced > 0) yield out.subarray(0, produced);
      if (consumed === 0 && produced === 0) break;
    }
    // Output can remain inside zstd after the input is used up.
    for (;;) {
      const out = Buffer.allocUnsafe(OUT_CHUNK);
      const [ret, produced] = dctx.decompressStream(out, Buffer.alloc(0));
      if (produced === 0) break;
      inFrame = ret !== 0;
      yield out.subarray(0, produced);
    }
  }
  if (inFrame || seen === 0) throw new DeltaError(`${name} is truncated: its zstd stream stops inside a frame after ${seen} compressed bytes`);
}

function startsWithDictMagic(b: Buffer): boolean {
  return b.length >= 4 && b.readUInt32LE(0) === ZSTD_DICT_MAGIC;
}

/** Whether a base slice can serve as a PATCH dictionary. */
export function usableDictionary(base: Buffer): boolean {
  return base.length > 0 && base.length <= MAX_PATCH_BYTES && !startsWithDictMagic(base);
}

/**
 * Compresses `target` with `base` as a raw-content dictionary (zstd's patch mode, one file).
 * The window covers the whole dictionary, so every part of it can be matched.
 */
export class PatchEncoder {
  private readonly cctx = new CCtx();

  constructor(private readonly level: number) {}

  encode(base: Buffer, target: Buffer): Buffer {
    this.cctx.reset(ResetDirective.sessionAndParameters);
    this.cctx.setParameter(CParameter.compressionLevel, this.level);
    const span = base.length + target.length;
    this.cctx.setParameter(CParameter.windowLog, Math.max(10, Math.min(27, Math.ceil(Math.log2(span + 1)))));
    this.cctx.setParameter(CParameter.contentSizeFlag, 1);
    this.cctx.loadDictionary(base);
    const out = Buffer.allocUnsafe(binding.compressBound(target.length));
    const n = this.cctx.compress2(out, target);
    return Buffer.from(out.subarray(0, n));
  }
}

/** Largest frame a PATCH of `newLen` bytes may carry. */
export function maxFrameBytes(newLen: number): number {
  return binding.compressBound(newLen) + PATCH_FRAME_SLACK;
}

/** Decodes one PATCH frame; everything about it is checked against what the operation declared. */
export function decodePatch(dctx: InstanceType<typeof DCtx>, base: Buffer, frame: Buffer, newLen: number, where: string): Buffer {
  if (!usableDictionary(base)) throw new DeltaError(`${where}: the base slice cannot be a dictionary (empty, too large, or starts with zstd's dictionary magic)`);
  let declared: number | null;
  try {
    declared = binding.getFrameContentSize(frame);
  } catch (err) {
    throw new DeltaError(`${where}: its frame is not a zstd frame: ${(err as Error).message}`);
  }
  if (declared !== newLen) throw new DeltaError(`${where}: its frame declares ${declared ?? 'no'} bytes of output, the operation ${newLen}`);
  const out = Buffer.allocUnsafe(newLen);
  let n: number;
  try {
    n = dctx.decompressUsingDict(out, frame, base);
  } catch (err) {
    throw new DeltaError(`${where}: its frame does not decode: zstd says "${(err as Error).message}"`);
  }
  if (n !== newLen) throw new DeltaError(`${where}: its frame decoded to ${n} bytes, expected ${newLen}`);
  return out;
}

export function newDecoderContext(): InstanceType<typeof DCtx> {
  return new DCtx();
}
