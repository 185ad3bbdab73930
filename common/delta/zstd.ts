import binding from 'zstd-napi/binding.js';
import type { ZstdThread } from './zstd-thread.js';
import { DeltaError, MAX_PATCH_BYTES, MAX_WINDOW_LOG, PATCH_FRAME_SLACK, ZSTD_DICT_MAGIC } from './format.js';

const { DCtx, DParameter } = binding;

const OUT_CHUNK = 256 << 10;
const IN_BATCH = 128 << 10;

/**
 * One zstd stream written piece by piece (compressed on the encoder's thread); compressed bytes
 * go to `emit` in order. Inputs are batched so that many small operations cost one call.
 */
export class ZstdWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly thread: ZstdThread, private readonly emit: (chunk: Buffer) => Promise<void>, private readonly level: number, private readonly windowLog: number) {}

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
    const src = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    for (const chunk of await this.thread.write(src, this.level, this.windowLog, last)) await this.emit(chunk);
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
 * Compresses `target` with `base` as a raw-content dictionary (zstd's patch mode, one file), on
 * the encoder's thread. The window covers the whole dictionary, so every part of it can be matched.
 */
export class PatchEncoder {
  constructor(private readonly thread: ZstdThread, private readonly level: number) {}

  encode(base: Buffer, target: Buffer): Promise<Buffer> {
    const windowLog = Math.max(10, Math.min(27, Math.ceil(Math.log2(base.length + target.length + 1))));
    // The fast levels size their match tables for small inputs; the dictionary is large, and what
    // it holds is only found when its positions fit (measured: half the patch bytes at -3).
    const tableLog = this.level < 16 ? Math.min(windowLog, 25) : undefined;
    return this.thread.patch(base, target, this.level, windowLog, tableLog);
  }
}

/** Largest frame a PATCH of `newLen` bytes may carry. */
export function maxFrameBytes(newLen: number): number {
  return binding.compressBound(newLen) + PATCH_FRAME_SLACK;
}

/**
 * Decodes one PATCH frame into `into` (at least `newLen` bytes; the result is a view of it);
 * everything about the frame is checked against what the operation declared.
 */
export function decodePatch(dctx: InstanceType<typeof DCtx>, base: Buffer, frame: Buffer, newLen: number, into: Buffer, where: string): Buffer {
  if (!usableDictionary(base)) throw new DeltaError(`${where}: the base slice cannot be a dictionary (empty, too large, or starts with zstd's dictionary magic)`);
  let declared: number | null;
  try {
    declared = binding.getFrameContentSize(frame);
  } catch (err) {
    throw new DeltaError(`${where}: its frame is not a zstd frame: ${(err as Error).message}`);
  }
  if (declared !== newLen) throw new DeltaError(`${where}: its frame declares ${declared ?? 'no'} bytes of output, the operation ${newLen}`);
  const out = into.subarray(0, newLen);
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
