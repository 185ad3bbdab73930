import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

/**
 * The upstream's answer over node:http: status, headers, and the body as a Node stream. node:http
 * reads a large blob body about twice as fast as fetch's web streams, and a cache miss streams
 * every byte through here.
 */
export class UpstreamResponse {
  readonly headers: { get(name: string): string | null };

  constructor(readonly message: IncomingMessage) {
    this.headers = {
      get: (name: string) => {
        const v = message.headers[name.toLowerCase()];
        return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
      },
    };
  }

  get status(): number {
    return this.message.statusCode ?? 0;
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  /** The body, chunk by chunk (errors if the connection breaks or the request's signal aborts). */
  get body(): AsyncIterable<Buffer> {
    return this.message;
  }

  /** Drops the body: small ones are drained so the connection can be reused, large ones cut. */
  async cancel(): Promise<void> {
    const length = Number(this.message.headers['content-length'] ?? Infinity);
    if (length <= 64 << 10 && !this.message.destroyed) {
      this.message.resume();
      await new Promise<void>((resolve) => {
        this.message.once('end', resolve);
        this.message.once('close', resolve);
        this.message.once('error', () => resolve());
      });
    } else {
      this.message.destroy();
    }
  }

  /** The whole body, refusing more than `limit` bytes. */
  async bytes(limit = 4 << 20): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const chunk of this.message as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (n > limit) {
        this.message.destroy();
        throw new Error(`response body over ${limit} bytes`);
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks, n);
  }

  async json(): Promise<unknown> {
    return JSON.parse((await this.bytes()).toString('utf8'));
  }
}

/**
 * One HTTP request, no redirects followed. `headersTimeoutMs` bounds the wait for the response
 * headers only; `signal` aborts the request and its body at any time (stall detection, shutdown).
 */
export function sendRequest(
  url: URL,
  init: { method: string; headers: Record<string, string>; signal?: AbortSignal; headersTimeoutMs: number },
): Promise<UpstreamResponse> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(url, { method: init.method, headers: init.headers, signal: init.signal }, (res) => {
      clearTimeout(timer);
      resolve(new UpstreamResponse(res));
    });
    const timer = setTimeout(() => req.destroy(new Error(`no response headers within ${init.headersTimeoutMs} ms`)), init.headersTimeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}
