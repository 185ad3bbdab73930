import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';

/** Large reads: the serving loop does one syscall and one chunk per MiB, not per 64 KiB. */
export const READ_CHUNK = 1 << 20;

export type RangeResult = { start: number; end: number } | 'unsatisfiable' | null;

/**
 * Parses a single HTTP byte range (RFC 9110 §14.1.2) against a resource of `size` bytes.
 * Returns null when the header is absent or not a single bytes range we honour (then the whole body
 * is served, as the RFC allows), 'unsatisfiable' for a well-formed range outside the resource.
 */
export function parseRange(header: string | undefined | null, size: number): RangeResult {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return null;
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

export interface BlobInfo {
  path: string;
  size: number;
  digest: string;
  contentType?: string;
}

/**
 * Serves a content-addressed file with Range, ETag and If-Range. The digest is the strong ETag:
 * content-addressed bytes never change, so a resuming client can trust any earlier partial copy.
 * `onClose` runs when the body stream ends or is aborted (callers use it to unpin a cache entry).
 */
export function blobResponse(req: Request, blob: BlobInfo, onClose?: () => void): Response {
  const etag = `"${blob.digest}"`;
  const headers = new Headers({
    'Accept-Ranges': 'bytes',
    'Content-Type': blob.contentType ?? 'application/octet-stream',
    'Docker-Content-Digest': blob.digest,
    ETag: etag,
  });
  let range = parseRange(req.headers.get('range'), blob.size);
  const ifRange = req.headers.get('if-range');
  if (range && ifRange && ifRange !== etag) range = null;
  if (range === 'unsatisfiable') {
    headers.set('Content-Range', `bytes */${blob.size}`);
    onClose?.();
    return new Response(null, { status: 416, headers });
  }
  const start = range ? range.start : 0;
  const end = range ? range.end : blob.size - 1;
  const length = blob.size === 0 ? 0 : end - start + 1;
  headers.set('Content-Length', String(length));
  if (range) headers.set('Content-Range', `bytes ${start}-${end}/${blob.size}`);
  const status = range ? 206 : 200;
  if (req.method === 'HEAD' || length === 0) {
    onClose?.();
    return new Response(null, { status, headers });
  }
  const stream = createReadStream(blob.path, { start, end, highWaterMark: READ_CHUNK });
  if (onClose) {
    let done = false;
    const once = () => { if (!done) { done = true; onClose(); } };
    stream.once('close', once);
    stream.once('error', once);
  }
  return new Response(Readable.toWeb(stream) as ReadableStream, { status, headers });
}
