import { createReadStream } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

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
  const m = /^bytes=(\d{0,16})-(\d{0,16})$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
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

/** What to answer for a blob request: status, headers and the byte span of the body (if any). */
export interface BlobPlan {
  status: 200 | 206 | 416;
  headers: Record<string, string>;
  /** Inclusive byte span to send; null when there is no body (HEAD, 416, empty blob). */
  body: { start: number; end: number } | null;
}

/**
 * The pure part of serving a content-addressed resource: Range, If-Range and the headers. The
 * digest is the strong ETag: content-addressed bytes never change, so a resuming client can trust
 * any earlier partial copy.
 */
export function planBlob(
  request: { method: string; range?: string | null; ifRange?: string | null },
  blob: { size: number; digest: string; contentType?: string },
): BlobPlan {
  const etag = `"${blob.digest}"`;
  const headers: Record<string, string> = {
    'Accept-Ranges': 'bytes',
    'Content-Type': blob.contentType ?? 'application/octet-stream',
    'Docker-Content-Digest': blob.digest,
    ETag: etag,
  };
  let range = parseRange(request.range, blob.size);
  // If-Range with anything but our strong ETag (an old ETag, a date) means "send it all".
  if (range && request.ifRange && request.ifRange.trim() !== etag) range = null;
  if (range === 'unsatisfiable') {
    headers['Content-Range'] = `bytes */${blob.size}`;
    headers['Content-Length'] = '0';
    return { status: 416, headers, body: null };
  }
  const start = range ? range.start : 0;
  const end = range ? range.end : blob.size - 1;
  const length = blob.size === 0 ? 0 : end - start + 1;
  headers['Content-Length'] = String(length);
  if (range) headers['Content-Range'] = `bytes ${start}-${end}/${blob.size}`;
  const status = range ? 206 : 200;
  const body = request.method === 'HEAD' || length === 0 ? null : { start, end };
  return { status, headers, body };
}

/**
 * Serves a content-addressed file with Range, ETag and If-Range as a web Response.
 * `onClose` runs when the body stream ends or is aborted (callers use it to unpin a cache entry).
 */
export function blobResponse(req: Request, blob: BlobInfo, onClose?: () => void): Response {
  const plan = planBlob({ method: req.method, range: req.headers.get('range'), ifRange: req.headers.get('if-range') }, blob);
  if (!plan.body) {
    onClose?.();
    return new Response(null, { status: plan.status, headers: plan.headers });
  }
  const stream = createReadStream(blob.path, { start: plan.body.start, end: plan.body.end, highWaterMark: READ_CHUNK });
  if (onClose) {
    let done = false;
    const once = () => { if (!done) { done = true; onClose(); } };
    stream.once('close', once);
    stream.once('error', once);
  }
  return new Response(Readable.toWeb(stream) as ReadableStream, { status: plan.status, headers: plan.headers });
}

/**
 * Writes a planned blob response straight to a Node response: 1 MiB reads into fresh buffers,
 * `pipeline` for backpressure and teardown, no web-stream conversion per chunk (the hot path of
 * the download channel). Resolves with the body bytes written; never rejects on a client that
 * hung up (that is how resumable downloads end).
 */
export async function sendBlobFile(res: ServerResponse, plan: BlobPlan, path: string): Promise<number> {
  res.writeHead(plan.status, plan.headers);
  if (!plan.body) {
    res.end();
    return 0;
  }
  const stream = createReadStream(path, { start: plan.body.start, end: plan.body.end, highWaterMark: READ_CHUNK });
  let sent = 0;
  stream.on('data', (chunk: Buffer | string) => { sent += chunk.length; });
  try {
    await pipeline(stream, res);
  } catch {
    // The client went away or the file vanished mid-read; the socket is already torn down.
  }
  return sent;
}
