import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { DecompressStream } from 'zstd-napi';
import { Digester } from '../../common/digest.js';

/**
 * A cached layer blob as its uncompressed tar, verified against the diff_id its image config
 * names. The compression is read from the blob's first bytes, not from the media type: registries
 * and tools disagree on media types, never on magic numbers.
 */
export type LayerEncoding = 'gzip' | 'zstd' | 'tar';

export class LayerDigestError extends Error {
  constructor(readonly expected: string, readonly actual: string, what: string) {
    super(`${what} decompresses to ${actual}, but its image config says ${expected}`);
    this.name = 'LayerDigestError';
  }
}

export async function sniffEncoding(path: string): Promise<LayerEncoding> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
    if (bytesRead === 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
    return 'tar';
  } finally {
    await fh.close();
  }
}

function decompressed(path: string, encoding: LayerEncoding): Readable {
  const file = createReadStream(path, { highWaterMark: 1 << 20 });
  if (encoding === 'tar') return file;
  const inflate = encoding === 'gzip' ? createGunzip({ chunkSize: 256 << 10 }) : new DecompressStream();
  file.on('error', (err) => inflate.destroy(err));
  return file.pipe(inflate);
}

/**
 * The layer tar of a blob file, front to back; throws LayerDigestError at the end when the bytes
 * are not `diffId` (a consumer must not keep what it made of them).
 */
export async function* layerTar(path: string, diffId: string, what: string): AsyncGenerator<Buffer> {
  const stream = decompressed(path, await sniffEncoding(path));
  const digester = new Digester();
  try {
    for await (const chunk of stream) {
      digester.update(chunk as Buffer);
      yield chunk as Buffer;
    }
  } finally {
    stream.destroy();
  }
  const actual = digester.digest();
  if (actual !== diffId) throw new LayerDigestError(diffId, actual, what);
}
