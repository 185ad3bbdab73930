import { describe, expect, it } from 'vitest';
import { RawConnection, requestText } from '../bench/raw-http.js';
import { useAnswersServer } from './http-answers.js';

/**
 * The load generator's HTTP client (test/bench/raw-http.ts) against node:http on loopback: the
 * framing it parses must count each answer once, whatever case the server gives its header names,
 * or a bench would count a body as the next answer (or hang).
 */
let url: URL;
useAnswersServer((u) => {
  url = u;
});

const get = (conn: RawConnection, path: string) => conn.send(requestText('GET', new URL(path, url), {}, undefined));

describe('RawConnection', () => {
  it('counts 304s, bodies by length and chunked bodies on one keep-alive connection, in order', async () => {
    const conn = new RawConnection(url);
    try {
      const answers = [];
      for (const path of ['/304', '/length', '/304', '/chunked', '/304', '/length']) answers.push(await get(conn, path));
      expect(answers.map((a) => a.status)).toEqual([304, 200, 304, 200, 304, 200]);
      expect(answers.map((a) => a.text)).toEqual(['', 'hello', '', '3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n', '', 'hello']);
    } finally {
      conn.close();
    }
  });

  it('reads a whole chunked body and the ETag on a `whole` connection', async () => {
    const conn = new RawConnection(url, {}, true);
    try {
      expect(await get(conn, '/chunked')).toMatchObject({ status: 200, text: 'abcdef' });
      expect(await get(conn, '/304')).toMatchObject({ status: 304, text: '', etag: '"7"' });
    } finally {
      conn.close();
    }
  });

  it("reads a 503's and a 429's Retry-After in seconds, on either kind of connection, and none elsewhere", async () => {
    for (const whole of [false, true]) {
      const conn = new RawConnection(url, {}, whole);
      try {
        expect(await get(conn, '/busy')).toMatchObject({ status: 503, retryAfter: 3 });
        // A date is not read: the caller's own backoff decides.
        const limited = await get(conn, '/limited');
        expect([limited.status, limited.retryAfter]).toEqual([429, undefined]);
        expect((await get(conn, '/length')).retryAfter).toBeUndefined();
      } finally {
        conn.close();
      }
    }
  });

  it('honours Connection: close in any case and opens a new connection for the next request', async () => {
    const conn = new RawConnection(url);
    try {
      const closed = await get(conn, '/close');
      expect(closed.status).toBe(401);
      expect(closed.text).toBe('unauthorized');
      expect((await get(conn, '/304')).status).toBe(304);
    } finally {
      conn.close();
    }
  });
});
