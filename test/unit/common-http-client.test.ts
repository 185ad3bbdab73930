import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { httpRequest, isConnectionError } from '../../common/http-client.js';

// Real HTTP on loopback: the client is I/O, so it is tested against a real server.
let server: Server | undefined;

async function serve(handler: (req: IncomingMessage, body: string, res: ServerResponse) => void): Promise<string> {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, Buffer.concat(chunks).toString('utf8'), res));
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('common/http-client over node:http', () => {
  it('sends method, headers and a UTF-8 body with its length; returns status, headers and text', async () => {
    const seen: Record<string, string | undefined> = {};
    const base = await serve((req, body, res) => {
      Object.assign(seen, { method: req.method, auth: req.headers.authorization, length: req.headers['content-length'], body });
      res.writeHead(201, { ETag: '"v7"', 'Content-Type': 'application/json', 'Set-Cookie': ['a=1', 'b=2'] }).end('{"ok":"ü"}');
    });
    const answer = await httpRequest(`${base}/v1/device/report`, { method: 'POST', headers: { authorization: 'Bearer t' }, body: '{"name":"gräte"}' });
    expect(seen).toEqual({ method: 'POST', auth: 'Bearer t', length: String(Buffer.byteLength('{"name":"gräte"}')), body: '{"name":"gräte"}' });
    expect([answer.status, answer.ok]).toEqual([201, true]);
    expect(answer.header('ETag')).toBe('"v7"');
    expect(answer.header('set-cookie')).toBe('a=1, b=2');
    expect(answer.header('x-missing')).toBeUndefined();
    expect(await answer.json()).toEqual({ ok: 'ü' });
  });

  it('GET is the default; a non-2xx answer is an answer, not an error', async () => {
    const base = await serve((req, _body, res) => res.writeHead(503).end(`busy ${req.method}`));
    const answer = await httpRequest(new URL(`${base}/x`));
    expect([answer.status, answer.ok, await answer.text()]).toEqual([503, false, 'busy GET']);
  });

  it('a refused connection rejects with its errno code, which counts as a connection error', async () => {
    const base = await serve((_req, _body, res) => res.end());
    server!.close();
    await tick(50);
    const err = await httpRequest(`${base}/x`).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ECONNREFUSED' });
    expect(isConnectionError(err)).toBe(true);
    expect(isConnectionError(new Error('HTTP 500'))).toBe(false);
    expect(isConnectionError('ECONNRESET')).toBe(false);
  });

  it('streams the body chunk by chunk as it arrives', async () => {
    const base = await serve((_req, _body, res) => {
      res.writeHead(200);
      res.write('first');
      setTimeout(() => res.end('second'), 1000);
    });
    const answer = await httpRequest(`${base}/blob`);
    const got: Array<[string, number]> = [];
    const t0 = Date.now();
    for await (const chunk of answer.body) got.push([chunk.toString(), Date.now() - t0]);
    expect(got.map(([c]) => c).join('')).toBe('firstsecond');
    expect(got[0][1]).toBeLessThan(500);
  });

  it('an abort while waiting rejects, and so does a body cut short (a connection error)', async () => {
    const base = await serve((req, _body, res) => {
      if (req.url === '/cut') {
        res.writeHead(200, { 'Content-Length': '100' });
        res.write('partial');
        setTimeout(() => res.socket?.destroy(), 20);
      }
      // '/wait' never answers
    });
    await expect(httpRequest(`${base}/wait`, { signal: AbortSignal.timeout(100) })).rejects.toThrow();
    const cut = await httpRequest(`${base}/cut`);
    const err = await cut.text().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(isConnectionError(err)).toBe(true);
  });

  it('headersTimeoutMs bounds the wait for headers only; a slow body still arrives', async () => {
    const base = await serve((req, _body, res) => {
      if (req.url === '/slow-body') {
        res.writeHead(200);
        res.write('a');
        // Well past the headers deadline below, with room for a loaded machine to send the headers in time.
        setTimeout(() => res.end('b'), 2500);
      }
    });
    const t0 = Date.now();
    await expect(httpRequest(`${base}/never`, { headersTimeoutMs: 80 })).rejects.toThrow(/no response headers .* within 80 ms/);
    expect(Date.now() - t0).toBeLessThan(2000);
    const slow = await httpRequest(`${base}/slow-body`, { headersTimeoutMs: 1000 });
    expect(await slow.text()).toBe('ab');
  });

  it('idleTimeoutMs cuts a body that stops flowing', async () => {
    const base = await serve((_req, _body, res) => {
      res.writeHead(200, { 'Content-Length': '10' });
      res.write('abc');
    });
    const answer = await httpRequest(`${base}/stall`, { idleTimeoutMs: 100 });
    await expect(answer.text()).rejects.toThrow();
  });

  it('refuses a body over the limit', async () => {
    const base = await serve((_req, _body, res) => res.end('x'.repeat(2000)));
    const answer = await httpRequest(`${base}/big`);
    await expect(answer.bytes(1000)).rejects.toThrow(/larger than 1000 bytes/);
  });

  it('a small discarded body is drained so the connection is reused; a large one is cut', async () => {
    const ports: number[] = [];
    const base = await serve((req, _body, res) => {
      ports.push(req.socket.remotePort ?? 0);
      if (req.url === '/large') {
        res.writeHead(404, { 'Content-Length': String(1 << 20) });
        res.write(Buffer.alloc(1 << 16));
        return; // the rest never comes: only a cut connection ends this
      }
      res.writeHead(404).end('not here');
    });
    const agentOpts = { headers: { connection: 'keep-alive' } };
    const first = await httpRequest(`${base}/small`, agentOpts);
    await first.cancel();
    await tick(100);
    const second = await httpRequest(`${base}/small`, agentOpts);
    second.discard();
    await tick(100);
    expect(ports[0]).toBe(ports[1]);
    const large = await httpRequest(`${base}/large`, agentOpts);
    const t0 = Date.now();
    await large.cancel();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(large.message.destroyed).toBe(true);
  });
});
