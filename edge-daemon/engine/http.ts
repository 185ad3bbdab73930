import { request, type IncomingMessage, type RequestOptions } from 'node:http';

/**
 * The Docker Engine API over its unix socket (or plain TCP), with node:http: the few dozen calls
 * the daemon makes do not need dockerode, docker-modem and their dependency trees resident on a
 * gateway whose whole budget is 50 MiB (edge-daemon/README.md, Footprint). Paths are unversioned,
 * as dockerode sent them, so the engine answers with its own API version.
 */

/** The engine answered with an error status: which call, the status and the engine's own message. */
export class EngineApiError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly statusCode: number,
    /** The engine's `message` (or its body's first 500 characters when it sent no JSON). */
    readonly reason: string,
  ) {
    super(`Docker Engine API ${method} ${path} answered ${statusCode}: ${reason}`);
    this.name = 'EngineApiError';
  }
}

/** Where the engine listens: `unix:///path` or `tcp://host:port` (plain HTTP, as `--docker-host` documents). */
export function engineEndpoint(host: string): Pick<RequestOptions, 'socketPath' | 'host' | 'port'> {
  if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length) };
  if (!/^(tcp|http):\/\//.test(host)) throw new Error(`--docker-host ${JSON.stringify(host)}: expected unix:///path or tcp://host:port`);
  const u = new URL(host.replace(/^tcp:/, 'http:'));
  return { host: u.hostname, port: Number(u.port || 2375) };
}

export type Query = Record<string, string | number | boolean | object | undefined>;

/** Query values as the Engine API reads them: objects (filters) as JSON, the rest as text. */
export function queryString(q: Query | undefined): string {
  if (!q) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined) continue;
    p.set(k, typeof v === 'object' ? JSON.stringify(v) : String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** Error bodies are read up to this much; the engine's are a line of JSON. */
const ERROR_BODY_LIMIT = 64 << 10;
/** JSON answers read whole are refused beyond this (a list of every image of a busy engine fits easily). */
const JSON_BODY_LIMIT = 32 << 20;

async function readBody(res: IncomingMessage, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of res as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > limit) {
      res.destroy();
      throw new Error(`${what}: answer larger than ${limit} bytes`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

function reasonOf(body: Buffer): string {
  const text = body.toString('utf8');
  try {
    const msg = (JSON.parse(text) as { message?: unknown }).message;
    if (typeof msg === 'string') return msg;
  } catch {
    // not JSON: the text itself, below
  }
  return text.trim().slice(0, 500) || '(no message)';
}

export interface EngineCall {
  method: string;
  path: string;
  query?: Query;
  /** Sent as JSON. */
  body?: unknown;
}

export class EngineHttp {
  private readonly endpoint: Pick<RequestOptions, 'socketPath' | 'host' | 'port'>;

  constructor(host: string) {
    this.endpoint = engineEndpoint(host);
  }

  /**
   * The answer with its body unread, once its status is a success; otherwise an EngineApiError.
   * Socket errors (ECONNREFUSED, ENOENT, EACCES…) pass through with their `code`: the daemon names
   * an unreachable engine by it.
   */
  async open(call: EngineCall): Promise<IncomingMessage> {
    const payload = call.body === undefined ? undefined : Buffer.from(JSON.stringify(call.body));
    const path = call.path + queryString(call.query);
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request({ ...this.endpoint, method: call.method, path, headers: payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {} }, resolve);
      req.on('error', reject);
      req.end(payload);
    });
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return res;
    const body = await readBody(res, ERROR_BODY_LIMIT, `${call.method} ${call.path}`).catch(() => Buffer.alloc(0));
    throw new EngineApiError(call.method, call.path, status, reasonOf(body));
  }

  /** The answer's JSON (undefined for an empty body, as 204 and most actions answer). */
  async json<T>(call: EngineCall): Promise<T> {
    const res = await this.open(call);
    const body = await readBody(res, JSON_BODY_LIMIT, `${call.method} ${call.path}`);
    return (body.length ? JSON.parse(body.toString('utf8')) : undefined) as T;
  }

  /** The answer's raw bytes (non-following container logs). */
  async bytes(call: EngineCall): Promise<Buffer> {
    return readBody(await this.open(call), JSON_BODY_LIMIT, `${call.method} ${call.path}`);
  }
}
