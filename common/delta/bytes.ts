import { MAX_VARINT_BYTES } from './format.js';

/** Bytes in order: a Node stream, a web stream, an async generator, or an array (tests). */
export type ByteStream = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** Reads a byte stream piece by piece: exact reads, peeks, varints and chunked spans. */
export class ByteReader {
  private chunks: Buffer[] = [];
  private avail = 0;
  private ended = false;
  /** Bytes consumed so far. */
  offset = 0;

  constructor(
    private readonly source: AsyncIterator<Uint8Array>,
    /** What the stream is, for messages ("delta", "target layer"). */
    private readonly name: string,
    /** Makes the error thrown for a stream that ends early or holds a bad varint. */
    private readonly fail: (message: string) => Error,
  ) {}

  static of(iterable: ByteStream, name: string, fail: (message: string) => Error): ByteReader {
    async function* pieces(): AsyncGenerator<Uint8Array> {
      yield* iterable;
    }
    return new ByteReader(pieces(), name, fail);
  }

  private truncated(what: string, at: number): Error {
    return this.fail(`${this.name} is truncated: it ends at byte ${at} while reading ${what}`);
  }

  /** Pulls until `n` bytes are buffered or the stream ends; returns whether they are there. */
  private async fill(n: number): Promise<boolean> {
    while (this.avail < n && !this.ended) {
      const r = await this.source.next();
      if (r.done) {
        this.ended = true;
        break;
      }
      if (r.value.length === 0) continue;
      const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.length);
      this.chunks.push(b);
      this.avail += b.length;
    }
    return this.avail >= n;
  }

  /** Up to `n` bytes without consuming them (fewer only at the end of the stream). */
  async peek(n: number): Promise<Buffer> {
    await this.fill(n);
    return this.gather(Math.min(n, this.avail), false);
  }

  async atEnd(): Promise<boolean> {
    return !(await this.fill(1));
  }

  async readExact(n: number, what: string): Promise<Buffer> {
    if (!(await this.fill(n))) throw this.truncated(what, this.offset + this.avail);
    return this.gather(n, true);
  }

  async readByte(what: string): Promise<number> {
    return (await this.readExact(1, what))[0];
  }

  async readVarint(what: string): Promise<number> {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      const b = await this.readByte(what);
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(value)) break;
        return value;
      }
      scale *= 0x80;
    }
    throw this.fail(`${this.name} is corrupt at byte ${this.offset}: ${what} is a varint longer than ${MAX_VARINT_BYTES} bytes or above 2^53`);
  }

  /** `n` bytes as they arrive, in pieces of at most `max` bytes (not copied when avoidable). */
  async *span(n: number, what: string, max = 1 << 20): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.avail === 0 && !(await this.fill(1))) throw this.truncated(what, this.offset);
      const take = Math.min(left, max, this.avail, this.chunks[0].length);
      left -= take;
      yield this.gather(take, true);
    }
  }

  /** Everything left, as it arrives. */
  async *rest(): AsyncGenerator<Buffer> {
    while (this.avail > 0 || (await this.fill(1))) {
      const b = this.chunks.shift() as Buffer;
      this.avail -= b.length;
      this.offset += b.length;
      yield b;
    }
  }

  private gather(n: number, consume: boolean): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0];
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (consume) {
        if (first.length === n) this.chunks.shift();
        else this.chunks[0] = first.subarray(n);
      }
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      let i = 0;
      while (filled < n) {
        const c = this.chunks[i];
        const take = Math.min(c.length, n - filled);
        c.copy(out, filled, 0, take);
        filled += take;
        if (consume) {
          if (take === c.length) this.chunks.shift();
          else this.chunks[0] = c.subarray(take);
        } else i++;
      }
    }
    if (consume) {
      this.avail -= n;
      this.offset += n;
    }
    return out;
  }
}
