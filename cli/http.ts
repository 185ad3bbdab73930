/**
 * The one place the CLI speaks HTTP: a bearer token, JSON in and out, and the control plane's
 * error envelope `{error: {code, message, field?}}` turned into a one-line CliError with a hint.
 */
import { describeTlsError } from '../common/tls-errors.js';
import { CliError } from './errors.js';

export interface RequestOptions {
  query?: Record<string, string | undefined>;
  /** JSON-encoded unless `contentType` says the body is already text. */
  body?: unknown;
  contentType?: string;
  /** Abort after this long; watch loops use short ones, imports long ones. */
  timeoutMs?: number;
}

export interface ServerError {
  status: number;
  code: string;
  message: string;
  field?: string;
  /** The whole error body, for routes that add details (e.g. a campaign's conflicts). */
  body?: unknown;
}

export class ApiError extends CliError {
  constructor(readonly what: string, readonly server: ServerError) {
    super(`${what} failed: ${server.message}${server.field ? ` (field ${server.field})` : ''} [${server.status} ${server.code}]`, hintFor(server));
    this.name = 'ApiError';
  }
}

function hintFor(e: ServerError): string | undefined {
  if (e.status === 401) return 'the token is missing, expired or revoked: set BERTH_TOKEN or run `berth login --server URL` (token on stdin)';
  if (e.status === 403) return "your token's role does not allow this; ask an admin for a token with the right role (`berth tokens create --role …`)";
  if (e.status === 404) return 'check the name or id (list them with the matching `list` command)';
  if (e.status === 409) return undefined;
  if (e.status >= 500) return 'the control plane failed; its log has the details (search for the request id)';
  return undefined;
}

export type Fetch = typeof fetch;

export class HttpClient {
  constructor(
    readonly server: string,
    private readonly token: string | undefined,
    private readonly fetchImpl: Fetch = fetch,
    /** The fleet CA the fetch trusts (for the words of a verification failure). */
    private readonly caFile?: string,
  ) {}

  /** A GET whose answer is read as it arrives (`berth logs -f`); refusals become ApiError as usual. */
  async stream(what: string, path: string, query: Record<string, string | undefined>, signal: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);
    const headers: Record<string, string> = { accept: 'application/x-ndjson' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let res: Response;
    try {
      res = await this.fetchImpl(url, { headers, signal });
    } catch (err) {
      throw new CliError(`${what} failed: cannot reach the control plane at ${this.server} (${networkReason(err)})`, 'is it running? check --server / BERTH_SERVER / `berth login`');
    }
    if (!res.ok || !res.body) throw new ApiError(what, parseServerError(res.status, res.statusText, await res.text()));
    return res.body;
  }

  async request<T = unknown>(what: string, method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    return (await this.exchange<T>(what, method, path, opts)).body;
  }

  /** Like request, with the status (e.g. 201 created versus 200 unchanged). */
  async exchange<T = unknown>(what: string, method: string, path: string, opts: RequestOptions = {}): Promise<{ status: number; body: T }> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers['content-type'] = opts.contentType ?? 'application/json';
      body = opts.contentType && typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    }
    let res: Response;
    try {
      res = await this.fetchImpl(url, { method, headers, body, signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000) });
    } catch (err) {
      const tls = describeTlsError(err, this.server, this.caFile);
      if (tls) throw new CliError(`${what} failed: ${tls}`, this.caFile ? 'is --server the fleet\'s control plane, and --ca-file its CA?' : 'pass the CA that signed it: --ca-file, BERTH_CA_FILE, or `berth login --ca-file`');
      throw new CliError(`${what} failed: cannot reach the control plane at ${this.server} (${networkReason(err)})`, 'is it running? check --server / BERTH_SERVER / `berth login`');
    }
    const text = await res.text();
    if (!res.ok) throw new ApiError(what, parseServerError(res.status, res.statusText, text));
    if (res.status === 204 || text === '') return { status: res.status, body: undefined as T };
    try {
      return { status: res.status, body: JSON.parse(text) as T };
    } catch {
      throw new CliError(`${what}: the server answered ${res.status} with something that is not JSON`, `is ${this.server} really a Berth control plane?`);
    }
  }
}

function networkReason(err: unknown): string {
  if (err instanceof Error) {
    if (err.name === 'TimeoutError') return 'timed out';
    const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
    if (cause?.code) return cause.code;
    if (cause?.message) return cause.message;
    return err.message;
  }
  return String(err);
}

export function parseServerError(status: number, statusText: string, text: string): ServerError {
  try {
    const v = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; field?: unknown } };
    if (v && typeof v.error === 'object' && v.error && typeof v.error.message === 'string') {
      return {
        status,
        code: typeof v.error.code === 'string' ? v.error.code : String(status),
        message: v.error.message,
        field: typeof v.error.field === 'string' ? v.error.field : undefined,
        body: v,
      };
    }
  } catch {
    // not the error envelope: fall through to the status line
  }
  const snippet = text.trim().split('\n')[0]?.slice(0, 200);
  return { status, code: String(status), message: snippet || statusText || 'request failed' };
}
