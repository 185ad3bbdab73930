import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LeanConnection } from '../bench/lean-http.js';
import { requestText } from '../bench/raw-http.js';
import { useAnswersServer } from './http-answers.js';

/**
 * The poll load generator's connection (test/bench/lean-http.ts) against node:http on loopback:
 * it reads every answer into one reused buffer, so it must count each answer once and whole even
 * when the answer comes in pieces, report what it could not read as a failure (never as a status),
 * and keep nothing from one answer in the next.
 */
let url: URL;
useAnswersServer((u) => {
  url = u;
});

interface Got {
  status: number;
  body: string;
  error?: string;
}

const request = (path: string, base = url) => Buffer.from(requestText('GET', new URL(path, base), {}, undefined));

/** One request; the body is copied during the call (the view is of the reused read buffer). */
const get = (conn: LeanConnection, path: string, base = url) =>
  new Promise<Got>((resolve) => conn.send(request(path, base), (status, body, err) => resolve({ status, body: body?.toString('utf8') ?? '', error: err?.message })));

describe('LeanConnection', () => {
  it('counts 304s, bodies by length, answers in pieces and chunked bodies on one keep-alive connection, in order', async () => {
    const conn = new LeanConnection(url);
    try {
      const got: Got[] = [];
      for (const path of ['/304', '/length', '/slow', '/304', '/big', '/chunked', '/304', '/length']) got.push(await get(conn, path));
      expect(got.map((a) => a.status)).toEqual([304, 200, 202, 304, 200, 200, 304, 200]);
      // The body handed over is its first 300 bytes at most (what the first error of a run shows).
      expect(got.map((a) => a.body)).toEqual(['', 'hello', '{"ok":true}', '', 'x'.repeat(300), '3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n', '', 'hello']);
      expect(got.every((a) => a.error === undefined)).toBe(true);
    } finally {
      conn.close();
    }
  });

  it('honours Connection: close in any case and opens a new connection for the next request', async () => {
    const conn = new LeanConnection(url);
    try {
      expect(await get(conn, '/close')).toEqual({ status: 401, body: 'unauthorized', error: undefined });
      expect((await get(conn, '/304')).status).toBe(304);
    } finally {
      conn.close();
    }
  });

  it('refuses a second request while one is waiting', async () => {
    const conn = new LeanConnection(url);
    try {
      const first = get(conn, '/slow');
      expect(() => conn.send(request('/304'), () => {})).toThrow(/one request at a time/);
      expect((await first).status).toBe(202);
    } finally {
      conn.close();
    }
  });

  describe('against a server that breaks HTTP', () => {
    let raw: TcpServer;
    let rawUrl: URL;
    beforeAll(async () => {
      raw = createTcpServer((socket) => {
        socket.once('data', (req) => {
          const path = req.toString('latin1').split(' ')[1];
          // Two answers to one request: the second was never asked for.
          if (path === '/two') socket.write('HTTP/1.1 304 Not Modified\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n');
          else if (path === '/garbage') socket.write('SSH-2.0-OpenSSH_9.2\r\n\r\n');
          else socket.destroy();
        });
      });
      await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
      rawUrl = new URL(`http://127.0.0.1:${(raw.address() as AddressInfo).port}/`);
    });
    afterAll(async () => {
      await new Promise<void>((resolve) => raw.close(() => resolve()));
    });

    it('fails (status 0, with the reason) on bytes after the answer, a head that is not HTTP, or a reset', async () => {
      for (const [path, why] of [
        ['/two', /bytes after the answer/],
        ['/garbage', /not HTTP\/1\.x/],
        ['/cut', /closed by the server before the answer|ECONNRESET/],
      ] as const) {
        const conn = new LeanConnection(rawUrl);
        try {
          const got = await get(conn, path, rawUrl);
          expect(got.status).toBe(0);
          expect(got.error).toMatch(why);
        } finally {
          conn.close();
        }
      }
    });
  });

  it('fails (status 0) when nothing listens', async () => {
    const closed = createTcpServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const conn = new LeanConnection(new URL(`http://127.0.0.1:${port}/`));
    try {
      const got = await get(conn, '/304', new URL(`http://127.0.0.1:${port}/`));
      expect(got.status).toBe(0);
      expect(got.error).toMatch(/ECONNREFUSED/);
    } finally {
      conn.close();
    }
  });
});
