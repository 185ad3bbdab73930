/**
 * One load process of the enrollment bench (enrollment.ts): devices [from, to) of `fleet` enroll
 * through the real routes (challenge, Ed25519 signature over the proof, enroll), `connections`
 * keep-alive connections at once. Reads its job as the first line of stdin, derives every key,
 * prints `{"event":"ready"}`, waits for a `go` line, then prints one result line and exits.
 *
 * The client is a minimal HTTP/1.1 over net.Socket (one request at a time per connection, bodies
 * by Content-Length or chunked): the load generator shares the machine's two cores with the server,
 * and node:http's client costs several times more CPU per request than the server's answer here.
 */
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { signBytes } from '../../protocol/keys.js';
import { enrollProofBytes } from '../../protocol/device.js';
import { simDevice, type SimDevice } from './devices.js';

export interface EnrollJob {
  url: string;
  fleet: string;
  from: number;
  to: number;
  connections: number;
}

export interface EnrollResult {
  event: 'done';
  enrolled: number;
  seconds: number;
  /** CPU seconds this load process spent in the measured window (user + system). */
  cpuSeconds: number;
  /** Answers other than 200, by "route status" (the run fails on any). */
  failures: Record<string, number>;
}

interface Answer {
  status: number;
  body: string;
}

/** One keep-alive connection; `send` must not be called again before its answer came. */
class Connection {
  private buf: Buffer = Buffer.alloc(0);
  private waiting: { resolve: (a: Answer) => void; reject: (e: Error) => void } | null = null;
  private readonly socket: Socket;

  constructor(private readonly host: string, port: number) {
    this.socket = connect({ host, port, noDelay: true });
    this.socket.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.parse();
    });
    const fail = (err: Error) => {
      this.waiting?.reject(err);
      this.waiting = null;
    };
    this.socket.on('error', fail);
    this.socket.on('close', () => fail(new Error('connection closed by the server')));
  }

  send(path: string, json: unknown): Promise<Answer> {
    const body = JSON.stringify(json);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(`POST ${path} HTTP/1.1\r\nHost: ${this.host}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private parse(): void {
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0 || !this.waiting) return;
    const head = this.buf.subarray(0, end).toString('latin1');
    const status = Number(head.slice(9, 12));
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    let body: string;
    let rest: Buffer;
    if (length) {
      const n = Number(length[1]);
      if (this.buf.length < end + 4 + n) return;
      body = this.buf.subarray(end + 4, end + 4 + n).toString('utf8');
      rest = this.buf.subarray(end + 4 + n);
    } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      const parts: Buffer[] = [];
      let at = end + 4;
      for (;;) {
        const eol = this.buf.indexOf('\r\n', at);
        if (eol < 0) return;
        const size = parseInt(this.buf.subarray(at, eol).toString('latin1'), 16);
        if (this.buf.length < eol + 2 + size + 2) return;
        if (size === 0) {
          at = eol + 4;
          break;
        }
        parts.push(this.buf.subarray(eol + 2, eol + 2 + size));
        at = eol + 2 + size + 2;
      }
      body = Buffer.concat(parts).toString('utf8');
      rest = this.buf.subarray(at);
    } else {
      this.waiting.reject(new Error(`answer without a length: ${head.slice(0, 200)}`));
      this.waiting = null;
      return;
    }
    this.buf = rest;
    const w = this.waiting;
    this.waiting = null;
    w.resolve({ status, body });
  }
}

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const first = await lines.next();
const job = JSON.parse(String(first.value)) as EnrollJob;
const url = new URL(job.url);
const devices: SimDevice[] = [];
for (let i = job.from; i < job.to; i++) devices.push(simDevice(job.fleet, i));
const conns = Array.from({ length: Math.min(job.connections, devices.length) }, () => new Connection(url.hostname, Number(url.port)));
process.stdout.write(JSON.stringify({ event: 'ready' }) + '\n');
await lines.next();

const failures: Record<string, number> = {};
const failed = (what: string) => (failures[what] = (failures[what] ?? 0) + 1);
let next = 0;
let enrolled = 0;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await Promise.all(
  conns.map(async (conn) => {
    while (next < devices.length) {
      const d = devices[next++];
      const ch = await conn.send('/v1/enroll/challenge', { serial: d.serial });
      if (ch.status !== 200) {
        failed(`challenge ${ch.status}`);
        continue;
      }
      const challenge = (JSON.parse(ch.body) as { challenge: string }).challenge;
      const r = await conn.send('/v1/enroll', { serial: d.serial, challenge, signature: signBytes(d.privateKey, enrollProofBytes(d.serial, challenge)) });
      if (r.status === 200) enrolled++;
      else failed(`enroll ${r.status}`);
    }
  }),
);
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
for (const c of conns) c.close();
const result: EnrollResult = { event: 'done', enrolled, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, failures };
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(0);
