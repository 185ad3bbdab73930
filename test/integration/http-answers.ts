import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll } from 'vitest';

/**
 * A node:http server on loopback with one answer per path, each a framing case the load
 * generator's clients (test/bench/raw-http.ts, lean-http.ts) must count once and whole.
 */
export async function startAnswersServer(): Promise<{ url: URL; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    switch (req.url) {
      case '/304':
        res.writeHead(304, { ETag: '"7"' }).end();
        break;
      case '/length':
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '5' }).end('hello');
        break;
      case '/big':
        // Larger than lean-http.ts's read buffer (16 KiB): read in several pieces.
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': String(40_000) }).end('x'.repeat(40_000));
        break;
      case '/slow':
        // The head, then the body 20 ms later: two reads for one answer.
        res.writeHead(202, { 'Content-Type': 'application/json', 'Content-Length': '11' });
        res.flushHeaders();
        setTimeout(() => res.end('{"ok":true}'), 20);
        break;
      case '/chunked':
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.write('abc');
        setTimeout(() => res.end('def'), 10);
        break;
      case '/busy':
        // As the control plane answers a write the database refused busy (control-plane/http.ts).
        res.writeHead(503, { 'Content-Type': 'application/json', 'retry-AFTER': '3' }).end('{"error":{"code":"database-busy","message":"busy"}}');
        break;
      case '/limited':
        res.writeHead(429, { 'Retry-After': 'Fri, 07 Nov 2036 00:00:00 GMT', 'Content-Length': '0' }).end();
        break;
      case '/close':
        res.writeHead(401, { CONNECTION: 'Close', 'CONTENT-LENGTH': '12' }).end('unauthorized');
        break;
      default:
        res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The answers server for one test file: started before its tests (handing its URL to `started`), closed after. */
export function useAnswersServer(started: (url: URL) => void): void {
  let server: Awaited<ReturnType<typeof startAnswersServer>> | undefined;
  beforeAll(async () => {
    server = await startAnswersServer();
    started(server.url);
  });
  afterAll(() => server?.close());
}
