import type { ClientRequest, IncomingMessage, RequestOptions } from 'node:http';

/**
 * The control channel's HTTP, over node:http rather than `fetch`: the first `fetch` loads undici,
 * which measured +12 MB resident in a daemon that idles at a few tens of MB (node:http: +2.5 MB).
 * The daemon only needs small JSON requests with a deadline; `https:` is loaded when a URL asks
 * for it. Keep-alive comes from Node's global agent, as it did from fetch.
 */

export interface ControlAnswer {
  status: number;
  ok: boolean;
  header(name: string): string | undefined;
  /** The whole body as UTF-8; rejects when the connection breaks mid-body or the signal fires. */
  text(): Promise<string>;
  /** Drops an unread body so the connection goes back to the pool or is closed. */
  discard(): void;
}

/** What undici gave a silent server before giving up: an answer (or its body) idle this long fails. */
const IDLE_MS = 300_000;

export async function controlRequest(
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string; signal?: AbortSignal },
): Promise<ControlAnswer> {
  const u = new URL(url);
  const request = u.protocol === 'https:' ? (await import('node:https')).request : (await import('node:http')).request;
  const headers: Record<string, string> = { ...init.headers };
  const body = init.body === undefined ? undefined : Buffer.from(init.body, 'utf8');
  if (body) headers['content-length'] = String(body.length);
  const options: RequestOptions = { method: init.method, headers, signal: init.signal };
  return new Promise((resolve, reject) => {
    let req: ClientRequest;
    try {
      req = request(u, options, (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        // An abort or a cut after the headers destroys `res` with an error; text() reports it, and
        // this listener keeps it from being an uncaught 'error' when the body is not being read.
        res.on('error', () => undefined);
        resolve({
          status,
          ok: status >= 200 && status < 300,
          header: (name) => {
            const v = res.headers[name.toLowerCase()];
            return v === undefined ? undefined : Array.isArray(v) ? v.join(', ') : v;
          },
          text: async () => {
            const chunks: Buffer[] = [];
            for await (const chunk of res as AsyncIterable<Buffer>) chunks.push(chunk);
            return Buffer.concat(chunks).toString('utf8');
          },
          discard: () => {
            res.resume();
          },
        });
      });
    } catch (err) {
      reject(err);
      return;
    }
    req.setTimeout(IDLE_MS, () => req.destroy(new Error(`no answer from ${u.host} for ${IDLE_MS / 1000} s`)));
    // 'on', not 'once': a late second error must not go unhandled (rejecting twice is a no-op).
    req.on('error', reject);
    req.end(body);
  });
}
