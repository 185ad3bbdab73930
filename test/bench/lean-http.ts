import { connect, type Socket } from 'node:net';
import { chunkedEnd, headOf } from './raw-http.js';

/**
 * The poll load generator's connection (load.ts), cheaper per request than raw-http.ts's
 * RawConnection, because on the 2 shared cores every µs it spends is taken from the server it
 * measures (the `--workers 2` comparison is bounded by 2c/(c+g), g being this CPU per request):
 * - requests are bytes built once (no UTF-8 encoding per write);
 * - answers are read into one buffer the connection reuses (net's `onread`): no Buffer allocated
 *   per read and no Readable stream push or 'data' event;
 * - the answer goes to a callback in the same turn (no promise, no microtask hop), so the next
 *   request of a closed loop is written from inside the read that completed the last one.
 * The framing is raw-http.ts's (status, Content-Length or chunked, `Connection: close`); an answer
 * with bytes after it that nobody asked for is a protocol error, as is a head not `HTTP/1.x`.
 * One request at a time (no pipelining), as a gateway does.
 */

/**
 * `status` 0 with `err`: no answer (connection refused, reset, closed, bad framing). `body`: the
 * answer's first bytes (up to 300), a view of the read buffer, valid only during the call.
 */
export type AnswerHandler = (status: number, body: Buffer | null, err?: Error) => void;

const CRLF2 = Buffer.from('\r\n\r\n');
/** Bytes read at once: a 304 or 202 head is a few hundred; a longer answer is gathered in `pending`. */
const READ_BYTES = 16 * 1024;

export class LeanConnection {
  private socket: Socket | null = null;
  private readonly readBuffer = Buffer.allocUnsafe(READ_BYTES);
  /** The start of an answer that came in pieces (copied out of the read buffer). */
  private pending: Buffer | null = null;
  private handler: AnswerHandler | null = null;

  constructor(private readonly url: URL) {}

  /** Writes one request (bytes as `requestText` makes them); `onAnswer` is called once, with its answer or its failure. */
  send(request: Buffer, onAnswer: AnswerHandler): void {
    if (this.handler) throw new Error('LeanConnection: one request at a time');
    this.handler = onAnswer;
    (this.socket ??= this.open()).write(request);
  }

  close(): void {
    const s = this.socket;
    this.socket = null;
    this.pending = null;
    s?.destroy();
  }

  private open(): Socket {
    const s: Socket = connect({
      // URL keeps an IPv6 host in brackets; connect wants the address alone.
      host: this.url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: Number(this.url.port || 80),
      noDelay: true,
      onread: {
        buffer: this.readBuffer,
        callback: (n: number) => {
          if (this.socket === s) this.received(n);
          return true;
        },
      },
    });
    // Only the current socket's failure fails the request waiting (an old one closing later does not).
    const fail = (err: Error) => {
      if (this.socket !== s) return;
      this.socket = null;
      this.finish(0, null, err);
    };
    s.on('error', fail);
    s.on('close', () => fail(new Error('connection closed by the server before the answer')));
    return s;
  }

  private finish(status: number, body: Buffer | null, err?: Error): void {
    this.pending = null;
    const h = this.handler;
    this.handler = null;
    h?.(status, body, err);
  }

  /** `n` new bytes at the start of the read buffer. */
  private received(n: number): void {
    if (!this.handler) return this.protocolError('bytes before any request');
    const fresh = this.readBuffer.subarray(0, n);
    const data = this.pending ? Buffer.concat([this.pending, fresh]) : fresh;
    const headEnd = data.indexOf(CRLF2);
    if (headEnd < 0) return this.keep(data);
    let status: number;
    let end: number;
    let close: boolean;
    try {
      if (data[0] !== 0x48 || data.toString('latin1', 0, 7) !== 'HTTP/1.') throw new Error(`answer is not HTTP/1.x: ${JSON.stringify(data.toString('latin1', 0, 40))}`);
      const head = headOf(data.toString('latin1', 0, headEnd));
      status = head.status;
      close = head.close;
      end = head.length >= 0 ? headEnd + 4 + head.length : chunkedEnd(data, headEnd + 4);
    } catch (err) {
      return this.protocolError((err as Error).message);
    }
    if (end < 0 || end > data.length) return this.keep(data);
    if (end < data.length) return this.protocolError(`${data.length - end} bytes after the answer, none asked for`);
    const body = data.subarray(headEnd + 4, Math.min(end, headEnd + 4 + 300));
    if (close) this.close();
    this.finish(status, body);
  }

  /** An answer not complete yet: its bytes copied, since the read buffer is reused by the next read. */
  private keep(data: Buffer): void {
    // With earlier pieces, `data` is already a copy (Buffer.concat).
    this.pending = this.pending ? data : Buffer.from(data);
  }

  private protocolError(why: string): void {
    this.close();
    this.finish(0, null, new Error(`${this.url.host}: ${why}`));
  }
}
