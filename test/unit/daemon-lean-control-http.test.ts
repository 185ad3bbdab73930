import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { controlRequest } from '../../edge-daemon/control-http.js';

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

describe('control channel HTTP (node:http instead of fetch)', () => {
  it('sends method, headers and a UTF-8 JSON body with its length; returns status, headers and text', async () => {
    const seen: { method?: string; auth?: string; length?: string; body?: string } = {};
    const base = await serve((req, body, res) => {
      Object.assign(seen, { method: req.method, auth: req.headers.authorization, length: req.headers['content-length'], body });
      res.writeHead(201, { ETag: '"v7"', 'Content-Type': 'application/json' }).end('{"ok":"ü"}');
    });
    const answer = await controlRequest(`${base}/v1/device/report`, { method: 'POST', headers: { authorization: 'Bearer t', 'content-type': 'application/json' }, body: '{"name":"gräte"}' });
    expect(seen).toEqual({ method: 'POST', auth: 'Bearer t', length: String(Buffer.byteLength('{"name":"gräte"}')), body: '{"name":"gräte"}' });
    expect(answer.status).toBe(201);
    expect(answer.ok).toBe(true);
    expect(answer.header('ETag')).toBe('"v7"');
    expect(answer.header('x-missing')).toBeUndefined();
    expect(await answer.text()).toBe('{"ok":"ü"}');
  });

  it('a non-2xx answer is an answer, not an error', async () => {
    const base = await serve((_req, _body, res) => res.writeHead(503).end('busy'));
    const answer = await controlRequest(`${base}/x`, { method: 'GET', headers: {} });
    expect([answer.status, answer.ok, await answer.text()]).toEqual([503, false, 'busy']);
  });

  it('a refused connection rejects with its errno code', async () => {
    const base = await serve((_req, _body, res) => res.end());
    server!.close();
    await new Promise((r) => setTimeout(r, 50));
    await expect(controlRequest(`${base}/x`, { method: 'GET', headers: {} })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('an abort while waiting (long-poll deadline) rejects, and so does a body cut short', async () => {
    const base = await serve((req, _body, res) => {
      if (req.url === '/cut') {
        res.writeHead(200, { 'Content-Length': '100' });
        res.write('partial');
        setTimeout(() => res.socket?.destroy(), 20);
      }
      // '/wait' never answers
    });
    const waiting = controlRequest(`${base}/wait`, { method: 'GET', headers: {}, signal: AbortSignal.timeout(100) });
    await expect(waiting).rejects.toThrow();
    const cut = await controlRequest(`${base}/cut`, { method: 'GET', headers: {} });
    await expect(cut.text()).rejects.toThrow();
  });
});
