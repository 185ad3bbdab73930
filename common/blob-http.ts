import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
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
 * Read size for one of `active` concurrent senders: READ_CHUNK while few clients share the
 * process, smaller when many do, so that the bytes in flight (one buffer being read and one being
 * written per client) stay near `budget` and the RSS stays flat under load.
 */
export function chunkSizeFor(active: number, budget = 8 << 20, min = 128 << 10): number {
  const share = Math.floor(budget / (2 * Math.max(1, active)));
  return Math.max(min, Math.min(READ_CHUNK, share));
}

/** Resolves when the socket wants more bytes, or is gone. */
export function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * Writes bytes [start, end] of an open file to a Node response: large reads into fresh buffers (the
 * socket may still hold the previous one), the next read running while the socket drains the
 * current chunk (two chunks per client at most), and no web-stream conversion per chunk. Returns
 * the bytes handed to the socket; stops quietly when the client hangs up (that is how interrupted
 * downloads end).
 */
export async function writeFileRange(res: ServerResponse, fh: FileHandle, start: number, end: number, chunkSize: () => number = () => READ_CHUNK, onChunk?: (bytes: number) => void): Promise<number> {
  const readAt = async (pos: number): Promise<Buffer> => {
    const buf = Buffer.allocUnsafeSlow(Math.min(chunkSize(), end + 1 - pos));
    onChunk?.(buf.length);
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) throw new Error(`file ended at byte ${pos}, expected ${end + 1}`);
    return bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
  };
  let pos = start;
  let next: Promise<Buffer> | null = readAt(pos);
  try {
    while (next && !res.destroyed) {
      const chunk: Buffer = await next;
      pos += chunk.length;
      next = pos <= end ? readAt(pos) : null;
      if (!res.write(chunk)) await drained(res);
    }
  } finally {
    // Never leave a read running on a handle the caller is about to close.
    await next?.catch(() => undefined);
  }
  return pos - start;
}

/**
 * Sends a planned blob response from a file straight to a Node response (the download hot path).
 * `onChunk` sees the size of each buffer allocated for a read (callers pace collections by it).
 */
export async function sendBlobFile(res: ServerResponse, plan: BlobPlan, path: string, chunkSize?: () => number, onChunk?: (bytes: number) => void): Promise<number> {
  if (!plan.body) {
    res.writeHead(plan.status, plan.headers);
    res.end();
    return 0;
  }
  // Open before the headers: a vanished file is still an error the caller can answer properly.
  const fh = await open(path, 'r');
  try {
    res.writeHead(plan.status, plan.headers);
    const sent = await writeFileRange(res, fh, plan.body.start, plan.body.end, chunkSize, onChunk);
    if (!res.destroyed) res.end();
    return sent;
  } catch {
    res.destroy();
    return 0;
  } finally {
    await fh.close().catch(() => undefined);
  }
}
