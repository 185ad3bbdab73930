import { request as httpRequestFn, type Agent, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';

/**
 * The one HTTP client of the daemon's control and download channels and of the proxy's upstream
 * client, over node:http rather than `fetch`:
 * - the first `fetch` loads undici, measured +12 MB resident in a daemon that idles at a few tens
 *   of MB (node:http: +2.5 MB); `node:https` is loaded only when a URL asks for it;
 * - a large blob body read as an IncomingMessage with backpressure costs about half the memory and
 *   reads about twice as fast as through fetch's web streams.
 * No redirects are followed (the proxy follows them by hand to keep credentials on one host).
 * Keep-alive comes from Node's global agent.
 */

export interface HttpRequestInit {
  /** Default GET. */
  method?: string;
  headers?: Record<string, string>;
  /** Sent with its Content-Length. */
  body?: string | Buffer;
  /** Aborts the request and its body at any time (deadline, stall detection, shutdown). */
  signal?: AbortSignal;
  /** Fails when the response headers have not arrived within this; the body may take longer. */
  headersTimeoutMs?: number;
  /** Fails when the connection is silent this long, waiting for headers or reading the body. */
  idleTimeoutMs?: number;
  /** For `https:`: the fleet's CA trusted besides the public roots (`--ca-file`, common/tls-trust.ts). */
  trust?: { agent: Agent };
}

/** Bodies read whole (`bytes`, `text`, `json`) are refused beyond this unless told otherwise. */
const DEFAULT_BODY_LIMIT = 16 << 20;
/** Error bodies up to this size are drained (the connection goes back to the pool); larger ones are cut. */
const DRAIN_LIMIT = 64 << 10;

/** An answer, any status (a non-2xx answer is not an error), with its body still to read. */
export class HttpAnswer {
  constructor(readonly message: IncomingMessage, private readonly method = 'GET') {
    // An abort or a cut after the headers destroys the message with an error; reading the body
    // reports it, and this listener keeps it from being uncaught when nobody reads.
    message.on('error', () => undefined);
  }

  get status(): number {
    return this.message.statusCode ?? 0;
  }

  get ok(): boolean {
    return this.status >= 200 && this.status < 300;
  }

  /** A header's value (repeated ones joined with ", "), case-insensitive. */
  header(name: string): string | undefined {
    const v = this.message.headers[name.toLowerCase()];
    return v === undefined ? undefined : Array.isArray(v) ? v.join(', ') : v;
  }

  /** The body chunk by chunk, each a fresh Buffer; errors when the connection breaks or the signal fires. */
  get body(): AsyncIterable<Buffer> {
    return this.message;
  }

  /** The whole body, refusing more than `limit` bytes (the connection is cut then). */
  async bytes(limit = DEFAULT_BODY_LIMIT): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const chunk of this.message as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (n > limit) {
        this.message.destroy();
        throw new Error(`answer body larger than ${limit} bytes`);
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks, n);
  }

  async text(limit = DEFAULT_BODY_LIMIT): Promise<string> {
    return (await this.bytes(limit)).toString('utf8');
  }

  async json(limit = DEFAULT_BODY_LIMIT): Promise<unknown> {
    return JSON.parse(await this.text(limit));
  }

  /** Drops an unread body: a small one is drained so the connection can be reused, a large one cut. */
  discard(): void {
    const m = this.message;
    if (m.destroyed) return;
    // A body already received whole (or none at all: HEAD, 204, 304) costs nothing to drain.
    const bodiless = m.complete || this.method === 'HEAD' || this.status === 204 || this.status === 304;
    const length = bodiless ? 0 : Number(m.headers['content-length'] ?? Infinity);
    if (length <= DRAIN_LIMIT) m.resume();
    else m.destroy();
  }

  /** `discard`, resolving once the body is drained or the connection closed. */
  async cancel(): Promise<void> {
    // `complete` is not enough: a parsed but unread body still holds the connection.
    if (this.message.readableEnded || this.message.destroyed) return;
    const done = new Promise<void>((resolve) => {
      this.message.once('end', resolve);
      this.message.once('close', resolve);
      this.message.once('error', () => resolve());
    });
    this.discard();
    await done;
  }
}

/** One request, no redirects followed. Rejects on a connection failure, a timeout or an abort. */
export async function httpRequest(url: URL | string, init: HttpRequestInit = {}): Promise<HttpAnswer> {
  const u = typeof url === 'string' ? new URL(url) : url;
  const send = u.protocol === 'https:' ? (await import('node:https')).request : httpRequestFn;
  const headers: Record<string, string> = { ...init.headers };
  const body = init.body === undefined ? undefined : typeof init.body === 'string' ? Buffer.from(init.body, 'utf8') : init.body;
  if (body) headers['content-length'] = String(body.length);
  const method = init.method ?? 'GET';
  const options: RequestOptions = { method, headers, signal: init.signal, ...(init.trust && u.protocol === 'https:' ? { agent: init.trust.agent } : {}) };
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let req: ClientRequest;
    try {
      req = send(u, options, (res: IncomingMessage) => {
        clearTimeout(timer);
        resolve(new HttpAnswer(res, method));
      });
    } catch (err) {
      reject(err);
      return;
    }
    if (init.headersTimeoutMs !== undefined) {
      const ms = init.headersTimeoutMs;
      timer = setTimeout(() => req.destroy(new Error(`no response headers from ${u.host} within ${ms} ms`)), ms);
    }
    if (init.idleTimeoutMs !== undefined) {
      const ms = init.idleTimeoutMs;
      req.setTimeout(ms, () => req.destroy(new Error(`no data from ${u.host} for ${ms} ms`)));
    }
    // 'on', not 'once': a late second error must not go unhandled (rejecting twice is a no-op).
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(body);
  });
}

const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN', 'ENOTFOUND']);

/** A socket-level failure worth retrying: refused, reset, cut mid-body. */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code;
  return (code !== undefined && TRANSIENT_CODES.has(code)) || err.message === 'aborted' || /socket hang up|premature close/i.test(err.message);
}
