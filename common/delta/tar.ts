import type { ByteReader } from './bytes.js';

/**
 * Walks a layer tar as raw byte spans. Nothing is re-serialized: an entry is the exact bytes of
 * its header blocks (with any PAX or GNU long-name records before it), then its content, then its
 * padding. The walker only needs to know where things are; the bytes are the caller's to copy.
 */

export const BLOCK = 512;
/** Header blocks and extended records of one entry above this are refused (not a sane layer). */
const MAX_META_BYTES = 1 << 20;

export interface TarEntry {
  /** Path as the tar names it after PAX/GNU overrides, without a leading "./" or "/" or a trailing "/". */
  path: string;
  /** The header's typeflag character ('0' regular, '1' hard link, '2' symlink, '5' directory, …). */
  type: string;
  metaStart: number;
  /** Raw header blocks of the entry, extended records included. */
  meta: Buffer;
  contentStart: number;
  size: number;
  padding: number;
}

export class TarFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TarFormatError';
  }
}

/** Types whose size field Go's archive/tar (and so Docker) ignores: they carry no data. */
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);
const EXTENDED = new Set(['x', 'g', 'L', 'K']);

export function normalizePath(p: string): string {
  let s = p;
  while (s.startsWith('./')) s = s.slice(2);
  return s.replace(/^\/+/, '').replace(/\/+$/, '');
}

function cstring(b: Buffer, start: number, len: number): string {
  const field = b.subarray(start, start + len);
  const nul = field.indexOf(0);
  return field.subarray(0, nul < 0 ? len : nul).toString('utf8');
}

/** A numeric field: octal text, or GNU base-256 (high bit set) for values octal cannot hold. */
function numeric(b: Buffer, start: number, len: number, where: string): number {
  const field = b.subarray(start, start + len);
  if (field[0] & 0x80) {
    if (field[0] === 0xff) throw new TarFormatError(`${where}: negative base-256 number`);
    let v = field[0] & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + field[i];
    if (!Number.isSafeInteger(v)) throw new TarFormatError(`${where}: number too large`);
    return v;
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`${where}: ${JSON.stringify(text)} is not an octal number`);
  return parseInt(text, 8);
}

function checksumOk(h: Buffer, where: string): boolean {
  const stored = numeric(h, 148, 8, `${where} checksum`);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const v = i >= 148 && i < 156 ? 0x20 : h[i];
    unsigned += v;
    signed += v > 127 ? v - 256 : v;
  }
  return stored === unsigned || stored === signed;
}

/** PAX records "LEN key=value\n"; only the keys that move entry boundaries or names matter here. */
function paxRecords(data: Buffer, where: string): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break;
    const space = data.indexOf(0x20, pos);
    const len = space < 0 ? NaN : Number(data.subarray(pos, space).toString('latin1'));
    if (!Number.isSafeInteger(len) || len <= 0 || pos + len > data.length) throw new TarFormatError(`${where}: malformed PAX record at byte ${pos}`);
    const record = data.subarray(space + 1, pos + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    pos += len;
  }
  return out;
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

const padOf = (n: number): number => (BLOCK - (n % BLOCK)) % BLOCK;

/**
 * The next entry's head, or null when the archive's end marker (a zero block) or the end of the
 * stream comes instead; the reader then stands before the trailer. After an entry the caller
 * must consume exactly `size + padding` bytes before asking for the next one.
 */
export async function nextEntry(r: ByteReader): Promise<TarEntry | null> {
  const metaStart = r.offset;
  const meta: Buffer[] = [];
  let metaBytes = 0;
  let paxPath: string | undefined;
  let paxSize: number | undefined;
  let longName: string | undefined;
  for (;;) {
    const where = `tar header at byte ${r.offset}`;
    const peek = await r.peek(BLOCK);
    if (peek.length === 0 && meta.length === 0) return null;
    if (peek.length < BLOCK) throw new TarFormatError(`${where}: the archive ends inside a header`);
    if (isZero(peek)) {
      if (meta.length > 0) throw new TarFormatError(`${where}: extended header without an entry after it`);
      return null;
    }
    const h = await r.readExact(BLOCK, 'a tar header');
    if (!checksumOk(h, where)) throw new TarFormatError(`${where}: bad header checksum (not a tar, or corrupt)`);
    meta.push(h);
    metaBytes += BLOCK;
    const type = String.fromCharCode(h[156] || 0x30);
    const size = numeric(h, 124, 12, `${where} size`);
    if (EXTENDED.has(type)) {
      metaBytes += size + padOf(size);
      if (metaBytes > MAX_META_BYTES) throw new TarFormatError(`${where}: extended records over ${MAX_META_BYTES} bytes`);
      const data = await r.readExact(size + padOf(size), 'extended tar records');
      meta.push(data);
      const body = data.subarray(0, size);
      if (type === 'x') {
        const rec = paxRecords(body, where);
        if (rec.has('path')) paxPath = rec.get('path');
        if (rec.has('size')) paxSize = Number(rec.get('size'));
      } else if (type === 'L') longName = cstring(body, 0, body.length);
      continue;
    }
    if (type === 'S' && h[482] !== 0) {
      // Old GNU sparse: further sparse-map blocks follow while their "extended" byte is set.
      let ext: Buffer;
      do {
        ext = await r.readExact(BLOCK, 'GNU sparse map');
        meta.push(ext);
        metaBytes += BLOCK;
      } while (ext[504] !== 0 && metaBytes <= MAX_META_BYTES);
    }
    const ustar = h.subarray(257, 263).toString('latin1') === 'ustar\0';
    const prefix = ustar ? cstring(h, 345, 155) : '';
    const name = cstring(h, 0, 100);
    const path = paxPath ?? longName ?? (prefix ? `${prefix}/${name}` : name);
    let contentSize = paxSize ?? size;
    if (!Number.isSafeInteger(contentSize) || contentSize < 0) throw new TarFormatError(`${where}: bad size ${contentSize}`);
    if (HEADER_ONLY.has(type)) contentSize = 0;
    const all = Buffer.concat(meta, metaBytes);
    return { path: normalizePath(path), type, metaStart, meta: all, contentStart: metaStart + metaBytes, size: contentSize, padding: padOf(contentSize) };
  }
}
