/**
 * A deterministic ustar writer for image layers: fixed mtime 0, uid/gid 0, sorted entries, parent
 * directories made explicit. Written here (not a library) so the bytes, and so the digests, are
 * fully under the test's control.
 */

export type TarEntry =
  | { type: 'file'; path: string; content: Buffer; mode: number }
  | { type: 'dir'; path: string; mode: number }
  | { type: 'symlink'; path: string; target: string };

const BLOCK = 512;

/** "a/b/c" from "/a/b/c", "./a/b/c" or "a//b/c/"; rejects ".." and empty paths. */
export function normalizeLayerPath(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0) throw new Error(`layer path ${JSON.stringify(path)} names no file`);
  if (parts.includes('..')) throw new Error(`layer path ${JSON.stringify(path)} must not contain ".."`);
  return parts.join('/');
}

/** Adds the parent directories (0755) of every entry, then sorts by path. */
export function completeEntries(entries: TarEntry[]): TarEntry[] {
  const byPath = new Map<string, TarEntry>();
  for (const e of entries) {
    const path = normalizeLayerPath(e.path);
    if (byPath.has(path)) throw new Error(`layer path ${path} given twice`);
    byPath.set(path, { ...e, path });
  }
  for (const path of [...byPath.keys()]) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      const existing = byPath.get(parent);
      if (!existing) byPath.set(parent, { type: 'dir', path: parent, mode: 0o755 });
      else if (existing.type !== 'dir') throw new Error(`layer path ${parent} is a ${existing.type} but ${path} is below it`);
    }
  }
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function octal(value: number, width: number): string {
  // width-1 octal digits and a NUL, as ustar wants.
  const s = value.toString(8);
  if (s.length > width - 1) throw new Error(`tar field overflow: ${value} does not fit ${width - 1} octal digits`);
  return s.padStart(width - 1, '0') + '\0';
}

/** ustar splits long names into prefix (155) and name (100) at a slash. */
function splitName(name: string): { prefix: string; name: string } {
  if (Buffer.byteLength(name) <= 100) return { prefix: '', name };
  for (let i = name.lastIndexOf('/'); i > 0; i = name.lastIndexOf('/', i - 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100) return { prefix, name: rest };
  }
  throw new Error(`layer path ${name} is too long for a ustar header`);
}

export function tarHeader(entry: TarEntry): Buffer {
  const h = Buffer.alloc(BLOCK);
  const path = entry.type === 'dir' ? `${entry.path}/` : entry.path;
  const { prefix, name } = splitName(path);
  const size = entry.type === 'file' ? entry.content.length : 0;
  const mode = entry.type === 'symlink' ? 0o777 : entry.mode;
  h.write(name, 0, 100, 'utf8');
  h.write(octal(mode & 0o7777, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii'); // uid
  h.write(octal(0, 8), 116, 'ascii'); // gid
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(0, 12), 136, 'ascii'); // mtime
  h.write(' '.repeat(8), 148, 'ascii'); // checksum placeholder
  h.write(entry.type === 'file' ? '0' : entry.type === 'dir' ? '5' : '2', 156, 'ascii');
  if (entry.type === 'symlink') {
    if (Buffer.byteLength(entry.target) > 100) throw new Error(`symlink target of ${entry.path} is longer than 100 bytes`);
    h.write(entry.target, 157, 100, 'utf8');
  }
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 32, 'ascii');
  h.write('root', 297, 32, 'ascii');
  h.write(octal(0, 8), 329, 'ascii'); // devmajor
  h.write(octal(0, 8), 337, 'ascii'); // devminor
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

/**
 * The archive as a sequence of chunks: headers, the callers' content buffers as they are (no
 * copy), padding, and the two zero blocks that end it.
 */
export function* tarChunks(entries: TarEntry[]): Generator<Buffer> {
  for (const entry of completeEntries(entries)) {
    yield tarHeader(entry);
    if (entry.type === 'file' && entry.content.length > 0) {
      yield entry.content;
      const pad = (BLOCK - (entry.content.length % BLOCK)) % BLOCK;
      if (pad) yield Buffer.alloc(pad);
    }
  }
  yield Buffer.alloc(BLOCK * 2);
}
