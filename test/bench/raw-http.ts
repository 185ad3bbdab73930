import { connect, type Socket } from 'node:net';

/** Where a connection comes from: fleet-sim binds source ports itself (more than the ephemeral range holds). */
export interface RawConnectOptions {
  localAddress?: string;
  localPort?: number;
}

/**
 * The load generator's HTTP/1.1 client: one keep-alive socket per connection, requests written as
 * one string and answers parsed just enough to count them (status, Content-Length or chunked
 * framing, `Connection: close`). node:http's client spent about as much CPU per request as the
 * server answering a 304 (ClientRequest and IncomingMessage objects, header parsing into objects,
 * an Agent's socket bookkeeping); on the 2 shared cores that CPU is taken from the server being
 * measured. Plain http only: the benches drive the control plane on loopback.
 */

export interface RawAnswer {
  status: number;
  /** The body's first bytes (up to 300), for the first error of a run; all of it on a `whole` connection. */
  text: string;
  /** On a `whole` connection: the ETag header, if any. */
  etag?: string;
  /** A 429's or 503's Retry-After, in seconds (a number of seconds; a date is not read). */
  retryAfter?: number;
}

const CRLF2 = Buffer.from('\r\n\r\n');

/** A request's head and body as written: `method path`, the Host header, the given headers, the body's length. */
export function requestText(method: string, url: URL, headers: Record<string, string>, body: string | undefined): string {
  let head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  if (body !== undefined) head += `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`;
  return head + '\r\n' + (body ?? '');
}

export interface Head {
  status: number;
  /** Bytes of body after the head; -1: chunked. */
  length: number;
  close: boolean;
}

/**
 * The head's status and framing. A bodiless answer (the 304s and 204s a poll bench counts by the
 * thousand) needs only `Connection: close` looked for; case-insensitive patterns instead of a
 * lowercased copy of every head: the load generator's CPU is taken from the server it measures.
 */
export function headOf(text: string): Head {
  const status = Number(text.slice(9, 12));
  const close = /\r\nconnection:[ \t]*close/i.test(text);
  // Answers that carry no body whatever their headers say (RFC 9112 §6.3).
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) return { status, length: 0, close };
  const cl = /\r\ncontent-length:[ \t]*(\d+)/i.exec(text);
  const chunked = /\r\ntransfer-encoding:[^\r]*chunked/i.test(text);
  return { status, length: chunked ? -1 : cl ? Number(cl[1]) : 0, close };
}

/** Where a chunked body ends in `buf` (after the last chunk and its trailer), or -1 if not yet. */
export function chunkedEnd(buf: Buffer, from: number): number {
  let at = from;
  for (;;) {
    const eol = buf.indexOf('\r\n', at);
    if (eol < 0) return -1;
    const size = parseInt(buf.toString('latin1', at, eol), 16);
    if (Number.isNaN(size)) throw new Error('bad chunk size in answer');
    if (size === 0) {
      const end = buf.indexOf(CRLF2, eol);
      return end < 0 ? -1 : end + 4;
    }
    at = eol + 2 + size + 2;
    if (at > buf.length) return -1;
  }
}

/** A complete chunked body (as `chunkedEnd` found it) without its framing. */
function dechunk(buf: Buffer): string {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', at);
    const size = parseInt(buf.toString('latin1', at, eol), 16);
    if (!(size > 0)) return Buffer.concat(parts).toString('utf8');
    parts.push(buf.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

function etagOf(head: string): string | undefined {
  return /\r\netag:\s*([^\r]*)/i.exec(head)?.[1];
}

function retryAfterOf(head: string): number | undefined {
  const m = /\r\nretry-after:\s*(\d+)\s*\r?/i.exec(head);
  return m ? Number(m[1]) : undefined;
}

/** A counted answer: its text is decoded only when read (the first error of a run), not for every 304. */
class CountedAnswer implements RawAnswer {
  constructor(
    readonly status: number,
    private readonly body: Buffer,
  ) {}

  get text(): string {
    return this.body.toString('utf8');
  }
}

/** One keep-alive connection; one request at a time (no pipelining). */
export class RawConnection {
  private socket: Socket | null = null;
  private buf: Buffer = Buffer.alloc(0);
  private waiting: { resolve(a: RawAnswer): void; reject(e: Error): void } | null = null;

  constructor(
    private readonly url: URL,
    readonly from: RawConnectOptions = {},
    /** Answers carry their whole body (de-chunked) and ETag: fleet-sim reads documents. */
    private readonly whole = false,
  ) {}

  private open(): Socket {
    // URL keeps an IPv6 host in brackets; connect wants the address alone.
    const s = connect({ host: this.url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(this.url.port || 80), noDelay: true, ...this.from });
    s.on('data', (chunk: Buffer) => {
      if (this.socket !== s) return;
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      this.parse();
    });
    // Only the current socket's failure fails the request waiting (an old one closing later does not).
    const fail = (err: Error) => {
      if (this.socket !== s) return;
      this.socket = null;
      this.buf = Buffer.alloc(0);
      const w = this.waiting;
      this.waiting = null;
      w?.reject(err);
    };
    s.on('error', fail);
    s.on('close', () => fail(new Error('connection closed by the server before the answer')));
    return s;
  }

  private parse(): void {
    const w = this.waiting;
    if (!w) return;
    const headEnd = this.buf.indexOf(CRLF2);
    if (headEnd < 0) return;
    let head: Head;
    let end: number;
    try {
      head = headOf(this.buf.toString('latin1', 0, headEnd));
      end = head.length >= 0 ? headEnd + 4 + head.length : chunkedEnd(this.buf, headEnd + 4);
    } catch (err) {
      this.socket?.destroy(err as Error);
      return;
    }
    if (end < 0 || end > this.buf.length) return;
    // Read only on the answers that carry one: the bulk (202, 304) parse nothing more.
    const retryAfter = head.status === 429 || head.status === 503 ? retryAfterOf(this.buf.toString('latin1', 0, headEnd)) : undefined;
    const answer: RawAnswer = this.whole
      ? { status: head.status, text: head.length >= 0 ? this.buf.toString('utf8', headEnd + 4, end) : dechunk(this.buf.subarray(headEnd + 4, end)), etag: etagOf(this.buf.toString('latin1', 0, headEnd)) }
      : new CountedAnswer(head.status, this.buf.subarray(headEnd + 4, Math.min(end, headEnd + 4 + 300)));
    if (retryAfter !== undefined) answer.retryAfter = retryAfter;
    this.buf = this.buf.subarray(end);
    this.waiting = null;
    if (head.close) this.close();
    w.resolve(answer);
  }

  /** Opens the connection now rather than with the first request (a bench connects before its measured window). */
  connect(): void {
    this.socket ??= this.open();
  }

  /** Sends one request (as `requestText` made it) and resolves with its answer. */
  send(request: string): Promise<RawAnswer> {
    if (this.waiting) return Promise.reject(new Error('RawConnection: one request at a time'));
    this.socket ??= this.open();
    const socket = this.socket;
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      socket.write(request, 'utf8');
    });
  }

  close(): void {
    const s = this.socket;
    this.socket = null;
    s?.destroy();
  }

  /** Cuts the connection and fails the request waiting on it with `err` (a client-side timeout). */
  abort(err: Error): void {
    const w = this.waiting;
    this.waiting = null;
    this.buf = Buffer.alloc(0);
    this.close();
    w?.reject(err);
  }

  /** A connect is under way (not yet accepted): fleet-sim opens its connections a window at a time. */
  get connecting(): boolean {
    return this.socket?.connecting ?? false;
  }

  get busy(): boolean {
    return this.waiting !== null;
  }
}
