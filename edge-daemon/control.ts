import type { KeyObject } from 'node:crypto';
import type { Logger } from './gateway-log.js';
import { signBytes } from '../protocol/keys.js';
import { enrollChallengeResponse, enrollProofBytes, enrollResponse, pullTokenResponse, type DeviceReport } from '../protocol/device.js';
import type { z } from 'zod';
import { controlRequest, type ControlAnswer } from './control-http.js';
import { describeTlsError } from '../common/tls-errors.js';
import type { HttpsTrust } from '../common/tls-trust.js';
import { deviceLogRoutes, LOG_REQUESTS_HEADER, type LogRequest } from '../protocol/device-logs.js';

const claimAnswer = deviceLogRoutes.claim.responses[200].schema;

/** The control channel, as `protocol/device.ts` defines it: small, frequent, Bearer device token. */

export class ControlError extends Error {
  constructor(
    readonly status: number | undefined,
    message: string,
    /** A 429's or 503's Retry-After (e.g. the control plane's database was busy), ms: no retry sooner. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ControlError';
  }
  /** The token is no longer accepted: enroll again with a fresh proof. */
  get unauthorized(): boolean {
    return this.status === 401;
  }
}

/** `logRequests`: log requests waiting for this gateway to claim them (issue 15; logs/). */
export type DesiredAnswer = ({ kind: 'none' } | { kind: 'unchanged' } | { kind: 'document'; jws: string; etag?: string }) & { logRequests?: number };

export class ControlClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: () => string | undefined,
    private readonly log: Logger,
    /** The fleet's CA for an https: control plane (`--ca-file`). */
    private readonly trust?: HttpsTrust,
  ) {}

  private url(path: string): string {
    return new URL(path, this.baseUrl.endsWith('/') ? this.baseUrl : this.baseUrl + '/').toString();
  }

  private async call(method: string, path: string, init: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal; auth?: boolean } = {}): Promise<ControlAnswer> {
    const headers: Record<string, string> = { ...init.headers };
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    if (init.auth !== false) {
      const t = this.token();
      if (t) headers.authorization = `Bearer ${t}`;
    }
    let res: ControlAnswer;
    try {
      res = await controlRequest(this.url(path), { method, headers, body: init.body === undefined ? undefined : JSON.stringify(init.body), signal: init.signal, trust: this.trust });
    } catch (err) {
      if (init.signal?.aborted) throw err;
      const tls = describeTlsError(err, this.baseUrl, this.trust?.caFile);
      throw new ControlError(undefined, `control plane unreachable (${method} ${path}): ${tls ?? ((err as Error).cause ? String((err as Error).cause) : (err as Error).message)}`);
    }
    return res;
  }

  private async json<T>(res: ControlAnswer, schema: z.ZodType<T>, what: string): Promise<T> {
    const text = await res.text();
    if (!res.ok) throw refusal(res, `${what}: HTTP ${res.status} ${text.slice(0, 300)}`);
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new ControlError(res.status, `${what}: answer is not JSON`);
    }
    const parsed = schema.safeParse(raw);
    if (!parsed.success) throw new ControlError(res.status, `${what}: unexpected answer: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
    return parsed.data;
  }

  /** Proves possession of the device key: a fresh challenge, signed. Also how the token is renewed. */
  async enroll(serial: string, key: KeyObject, signal?: AbortSignal, encryptionKey?: string): Promise<z.infer<typeof enrollResponse>> {
    const ch = await this.json(await this.call('POST', 'v1/enroll/challenge', { body: { serial }, auth: false, signal }), enrollChallengeResponse, 'enrollment challenge');
    // The proof covers the encryption key too (v2): nobody else can register a key under this serial.
    const signature = signBytes(key, enrollProofBytes(serial, ch.challenge, encryptionKey));
    const res = await this.call('POST', 'v1/enroll', { body: { serial, challenge: ch.challenge, signature, ...(encryptionKey ? { encryptionKey } : {}) }, auth: false, signal });
    const out = await this.json(res, enrollResponse, 'enrollment');
    this.log.info({ deviceId: out.deviceId, tokenExpiresAt: out.tokenExpiresAt }, 'enrolled');
    return out;
  }

  async desired(etag: string | undefined, waitSeconds: number, signal?: AbortSignal): Promise<DesiredAnswer> {
    const headers: Record<string, string> = {};
    if (etag) headers['if-none-match'] = etag;
    // A long-poll that outlives its wait by far is a dead connection, not a slow answer.
    const bounded = AbortSignal.any([...(signal ? [signal] : []), AbortSignal.timeout((waitSeconds + 15) * 1000)]);
    const res = await this.call('GET', `v1/device/desired?wait=${waitSeconds}`, { headers, signal: bounded });
    const logRequests = Number(res.header(LOG_REQUESTS_HEADER) ?? 0) || 0;
    if (res.status === 304) {
      res.discard();
      return { kind: 'unchanged', logRequests };
    }
    if (res.status === 204) {
      res.discard();
      return { kind: 'none', logRequests };
    }
    const text = await res.text();
    if (!res.ok) throw refusal(res, `desired state: HTTP ${res.status} ${text.slice(0, 300)}`);
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new ControlError(res.status, 'desired state: answer is not JSON');
    }
    const jws = (doc as { document?: unknown } | null)?.document;
    if (typeof jws !== 'string') throw new ControlError(res.status, 'desired state: answer has no document');
    return { kind: 'document', jws, etag: res.header('etag'), logRequests };
  }

  /** The log requests waiting for this gateway, claimed by asking (logs/). */
  async claimLogRequests(signal?: AbortSignal): Promise<LogRequest[]> {
    return (await this.json(await this.call('POST', 'v1/device/logs/claim', { body: {}, signal }), claimAnswer, 'log requests')).requests;
  }

  /** Where a log request's lines go, and the header that authenticates them (logs/upload.ts streams them itself). */
  logUploadTarget(id: string): { url: string; authorization: string | undefined; agent: HttpsTrust['agent'] | undefined } {
    const t = this.token();
    return { url: this.url(`v1/device/logs/${encodeURIComponent(id)}`), authorization: t ? `Bearer ${t}` : undefined, agent: this.trust?.agent };
  }

  async pullToken(signal?: AbortSignal): Promise<z.infer<typeof pullTokenResponse>> {
    return this.json(await this.call('POST', 'v1/device/pull-token', { body: {}, signal }), pullTokenResponse, 'pull token');
  }

  async report(report: DeviceReport, signal?: AbortSignal): Promise<void> {
    const res = await this.call('POST', 'v1/device/report', { body: report, signal });
    const text = await res.text();
    // 4xx other than auth means the report itself is refused; sending it again would not help.
    if (res.status >= 500 || res.status === 401 || res.status === 429) throw refusal(res, `report: HTTP ${res.status} ${text.slice(0, 300)}`);
    if (!res.ok) this.log.warn({ status: res.status, body: text.slice(0, 300), sequence: report.sequence }, 'report refused by the control plane');
  }
}

/** A refused answer as a ControlError, with its Retry-After (seconds; a date is not read) on a 429 or 503. */
function refusal(res: ControlAnswer, message: string): ControlError {
  const after = res.status === 429 || res.status === 503 ? res.header('retry-after') : undefined;
  return new ControlError(res.status, message, after !== undefined && /^\d+$/.test(after) ? Number(after) * 1000 : undefined);
}

/** For retry()'s `notBefore`: the wait a control plane's answer asked for. */
export const retryAfterOf = (err: unknown): number | undefined => (err instanceof ControlError ? err.retryAfterMs : undefined);
