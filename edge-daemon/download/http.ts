import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** A GET answer with its body still to read: what the download channel needs of HTTP. */
export interface HttpAnswer {
  status: number;
  header(name: string): string | null;
  /** Chunks as they arrive; each is a fresh Buffer (never reused by the socket). */
  body: AsyncIterable<Buffer>;
  /** Drops the body (error answers) so the connection is not left half-read. */
  discard(): void;
  bytes(limit: number): Promise<Buffer>;
}

/**
 * GET over node:http rather than fetch: streaming a 200 MB blob to disk through undici's web
 * streams costs about twice the resident memory of an IncomingMessage read with backpressure, and
 * gateways are small.
 */
export function httpGet(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<HttpAnswer> {
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', headers, signal }, (res: IncomingMessage) => {
      resolve({
        status: res.statusCode ?? 0,
        header: (name) => {
          const v = res.headers[name.toLowerCase()];
          return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
        },
        body: res,
        discard: () => {
          res.destroy();
        },
        bytes: async (limit) => {
          const chunks: Buffer[] = [];
          let length = 0;
          for await (const chunk of res as AsyncIterable<Buffer>) {
            length += chunk.length;
            if (length > limit) {
              res.destroy();
              throw new Error(`answer larger than ${limit} bytes`);
            }
            chunks.push(chunk);
          }
          return Buffer.concat(chunks);
        },
      });
    });
    // 'on', not 'once': a late second error must not go unhandled (rejecting twice is a no-op).
    req.on('error', reject);
    req.end();
  });
}

const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN', 'ENOTFOUND']);

/** A socket-level failure worth retrying: refused, reset, cut mid-body. */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code;
  return (code !== undefined && TRANSIENT_CODES.has(code)) || err.message === 'aborted' || /socket hang up|premature close/i.test(err.message);
}
