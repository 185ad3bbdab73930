import { createHash } from 'node:crypto';
import { ByteReader } from './bytes.js';
import type { RandomAccessSource } from './source.js';
import { sequential } from './source.js';
import { nextEntry, TarFormatError, type TarEntry } from './tar.js';

export interface BaseEntry {
  type: string;
  metaStart: number;
  contentStart: number;
  size: number;
  /** sha256 (hex) of the content of a regular file with content. */
  contentHash?: string;
}

/** Where everything is in a base tar: by path, by content, and its trailer. */
export interface BaseIndex {
  diffId: string;
  size: number;
  byPath: Map<string, BaseEntry>;
  /** Content hash → offset of the first regular file with that content. */
  byContent: Map<string, number>;
  trailerStart: number;
}

export const isRegular = (type: string): boolean => type === '0' || type === '7';

function fail(message: string): Error {
  return new TarFormatError(message);
}

/** Reads the whole base once, front to back: its entries, its content hashes, its diff_id. */
export async function indexBase(base: RandomAccessSource): Promise<BaseIndex> {
  const whole = createHash('sha256');
  async function* hashed(): AsyncGenerator<Buffer> {
    for await (const chunk of sequential(base)) {
      whole.update(chunk);
      yield chunk;
    }
  }
  const r = ByteReader.of(hashed(), 'base layer', fail);
  const byPath = new Map<string, BaseEntry>();
  const byContent = new Map<string, number>();
  let e: TarEntry | null;
  while ((e = await nextEntry(r))) {
    const entry: BaseEntry = { type: e.type, metaStart: e.metaStart, contentStart: e.contentStart, size: e.size };
    if (e.size > 0) {
      const h = createHash('sha256');
      for await (const piece of r.span(e.size, `content of ${e.path}`)) h.update(piece);
      if (isRegular(e.type)) {
        entry.contentHash = h.digest('hex');
        if (!byContent.has(entry.contentHash)) byContent.set(entry.contentHash, e.contentStart);
      }
    }
    await r.readExact(e.padding, `padding of ${e.path}`);
    // A later entry for the same path wins, as it does when the layer is extracted.
    byPath.set(e.path, entry);
  }
  const trailerStart = r.offset;
  for await (const _ of r.rest()) void _;
  return { diffId: 'sha256:' + whole.digest('hex'), size: base.size, byPath, byContent, trailerStart };
}
