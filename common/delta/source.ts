import { open, type FileHandle } from 'node:fs/promises';
import { DeltaError } from './format.js';

/**
 * A base layer tar with random reads: a file, a byte range of a larger file (a layer inside a
 * `docker save` archive), or memory (tests). Reads past `size` are the caller's bug and refused.
 * `into`, when given and large enough, receives the bytes (no allocation per read); the result
 * is then a view of it, valid until the caller reuses it.
 */
export interface RandomAccessSource {
  readonly size: number;
  read(position: number, length: number, into?: Buffer): Promise<Buffer>;
}

const READ_CHUNK = 1 << 20;

/** Bytes [start, start + size) of an open file as a base. The caller keeps and closes the handle. */
export function fileRangeSource(fh: FileHandle, start: number, size: number): RandomAccessSource {
  return {
    size,
    async read(position: number, length: number, into?: Buffer): Promise<Buffer> {
      if (position < 0 || length < 0 || position + length > size) {
        throw new DeltaError(`base read [${position}, ${position + length}) is outside its ${size} bytes`);
      }
      const buf = into && into.length >= length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, start + position + done);
        if (bytesRead === 0) throw new DeltaError(`base file ended at byte ${position + done}, expected ${size} bytes`);
        done += bytesRead;
      }
      return buf;
    },
  };
}

/** A whole file as a base; close() when done. */
export async function openFileSource(path: string): Promise<RandomAccessSource & { close(): Promise<void> }> {
  const fh = await open(path, 'r');
  const { size } = await fh.stat();
  return { ...fileRangeSource(fh, 0, size), close: () => fh.close() };
}

/** A buffer that grows (up to `cap`) to the largest size asked of it and is reused. */
export class Scratch {
  private buf = Buffer.alloc(0);
  constructor(private readonly cap: number) {}
  get(n: number): Buffer {
    if (this.buf.length < n) this.buf = Buffer.allocUnsafe(Math.max(n, Math.min(this.buf.length * 2, this.cap)));
    return this.buf;
  }
}

export function bufferSource(bytes: Buffer): RandomAccessSource {
  return {
    size: bytes.length,
    async read(position: number, length: number): Promise<Buffer> {
      if (position < 0 || length < 0 || position + length > bytes.length) {
        throw new DeltaError(`base read [${position}, ${position + length}) is outside its ${bytes.length} bytes`);
      }
      return bytes.subarray(position, position + length);
    },
  };
}

/** The source front to back, in chunks (to walk it as a stream). */
export async function* sequential(src: RandomAccessSource, chunk = READ_CHUNK): AsyncGenerator<Buffer> {
  for (let pos = 0; pos < src.size; pos += chunk) yield await src.read(pos, Math.min(chunk, src.size - pos));
}
