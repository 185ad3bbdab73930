
/**
 * The Berth layer delta, version 1 (registry-proxy/DELTA.md is the reference): a 96-byte header,
 * then one zstd stream of operations that emit the target layer tar in order from the base tar.
 */

export const MAGIC = Buffer.from('BERTHDLT', 'ascii');
export const FORMAT_VERSION = 1;
export const HEADER_BYTES = 96;

export const OP = { end: 0, copy: 1, literal: 2, patch: 3 } as const;

/**
 * Largest base slice and largest output of one PATCH: an applier holds both (and the frame) in
 * memory at once, so this bounds its buffers whatever a delta says.
 */
export const MAX_PATCH_BYTES = 8 << 20;
/** A PATCH frame may not be larger than this over its output (zstd's bound is far below). */
export const PATCH_FRAME_SLACK = 64 << 10;
/** The outer stream's zstd window may not exceed 2^this bytes (memory on the gateway). */
export const MAX_WINDOW_LOG = 23;
/** zstd's dictionary magic: a base slice starting with it would be read as a trained dictionary. */
export const ZSTD_DICT_MAGIC = 0xec30a437;

export interface DeltaHeader {
  version: number;
  /** sha256 digests (`sha256:…`) of the base and target layer tars (their diff_ids). */
  from: string;
  to: string;
  fromSize: number;
  toSize: number;
}

/** Everything wrong with a delta or its use: corrupt, truncated, out of bounds, wrong base. */
export class DeltaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeltaError';
  }
}

function hexOf(digest: string, what: string): Buffer {
  const m = /^sha256:([a-f0-9]{64})$/.exec(digest);
  if (!m) throw new DeltaError(`delta header: ${what} ${JSON.stringify(digest)} is not sha256:<64 hex>`);
  return Buffer.from(m[1], 'hex');
}

function checkSize(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new DeltaError(`delta header: ${what} ${n} is not a byte count`);
}

export function encodeHeader(h: DeltaHeader): Buffer {
  checkSize(h.fromSize, 'from size');
  checkSize(h.toSize, 'to size');
  const b = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(b, 0);
  b.writeUInt16BE(h.version, 8);
  b.writeUInt16BE(0, 10);
  hexOf(h.from, 'from').copy(b, 12);
  hexOf(h.to, 'to').copy(b, 44);
  b.writeBigUInt64BE(BigInt(h.fromSize), 76);
  b.writeBigUInt64BE(BigInt(h.toSize), 84);
  b.writeUInt32BE(headerCrc(b), 92);
  return b;
}

/**
 * The header's checksum. node:zlib is loaded here, at the first delta, not with this module: the
 * edge daemon loads this module with its download channel, and a gateway that never rebuilds a
 * layer from a delta has no other use for zlib (≈ 0.2 MiB resident; edge-daemon/README.md, Ninth pass).
 */
function headerCrc(b: Buffer): number {
  return process.getBuiltinModule('node:zlib').crc32(b.subarray(0, 92));
}

export function decodeHeader(b: Buffer): DeltaHeader {
  if (b.length < HEADER_BYTES) throw new DeltaError(`delta is truncated: ${b.length} bytes, shorter than its ${HEADER_BYTES}-byte header`);
  if (!b.subarray(0, 8).equals(MAGIC)) throw new DeltaError('not a Berth delta: bad magic (expected "BERTHDLT")');
  if (b.readUInt32BE(92) !== headerCrc(b)) throw new DeltaError('delta header is corrupt: its checksum does not match');
  const version = b.readUInt16BE(8);
  if (version !== FORMAT_VERSION) throw new DeltaError(`delta format version ${version} is not supported (this build reads ${FORMAT_VERSION})`);
  if (b.readUInt16BE(10) !== 0) throw new DeltaError('delta header: unknown flags set');
  const fromSize = Number(b.readBigUInt64BE(76));
  const toSize = Number(b.readBigUInt64BE(84));
  checkSize(fromSize, 'from size');
  checkSize(toSize, 'to size');
  return {
    version,
    from: 'sha256:' + b.subarray(12, 44).toString('hex'),
    to: 'sha256:' + b.subarray(44, 76).toString('hex'),
    fromSize,
    toSize,
  };
}

/** Unsigned LEB128, at most 2^53 - 1 (JavaScript's safe integers). */
export function encodeVarint(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new DeltaError(`varint ${n} is not a non-negative safe integer`);
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Buffer.from(out);
}

/** The most bytes a varint may take: 8 × 7 bits cover 2^53 - 1. */
export const MAX_VARINT_BYTES = 8;
