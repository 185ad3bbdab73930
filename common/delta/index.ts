/**
 * Berth layer deltas (registry-proxy/DELTA.md): the proxy encodes, the gateway applies.
 *
 *   const base = await openFileSource('/var/lib/berth/base.tar');      // or fileRangeSource(fh, start, size)
 *   const { diffId, size } = await applyDelta({ base, delta: response.body, outPath, expectDiffId });
 */
export { applyDelta, applyDeltaTo, type ApplyOptions, type ApplyResult } from './apply.js';
export { encodeDelta, type EncodeOptions, type EncodeResult, type EncodeStats } from './encode.js';
export { indexBase, type BaseIndex } from './base-index.js';
export type { ByteStream } from './bytes.js';
export { decodeHeader, DeltaError, FORMAT_VERSION, HEADER_BYTES, MAX_PATCH_BYTES, type DeltaHeader } from './format.js';
export { bufferSource, fileRangeSource, openFileSource, sequential, type RandomAccessSource } from './source.js';
export { TarFormatError } from './tar.js';
