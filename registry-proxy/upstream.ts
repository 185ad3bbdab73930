import { retry, type BackoffPolicy } from '../common/backoff.js';
import { httpRequest, type HttpAnswer } from '../common/http-client.js';
import type { Logger } from '../common/log.js';
import type { UpstreamConfig } from './config.js';
import { OciError } from './errors.js';
import { parseChallenge, type Challenge } from './www-auth.js';

export interface UpstreamOptions {
  /** Time allowed until response headers arrive. */
  headersTimeoutMs: number;
  /** Attempts for a request that failed on the network, 5xx or 429. */
  attempts: number;
  backoffMs: number;
  log: Logger;
}

export const DEFAULT_UPSTREAM_OPTIONS = { headersTimeoutMs: 30_000, attempts: 3, backoffMs: 200 };

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** The upstream could not be reached at all (as opposed to answering with an error). */
export class UpstreamUnreachable extends Error {
  constructor(readonly alias: string, cause: unknown) {
    super(`upstream ${alias} unreachable: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = 'UpstreamUnreachable';
  }
}

/**
 * The proxy's backoff towards upstreams: doubling from `baseMs`, at most 32 times it. No jitter:
 * one proxy retries, not a fleet, and single-flight fetches keep it from retrying in parallel.
 */
export function upstreamBackoff(baseMs: number): BackoffPolicy {
  return { baseMs, capMs: baseMs * 32 };
}

/** A 5xx or 429 answer that another attempt may get past. */
class RetryableStatus extends Error {
  constructor(readonly status: number) {
    super(`HTTP ${status}`);
  }
}

const MAX_REDIRECTS = 5;

/**
 * One upstream registry: anonymous, basic, or the bearer-token challenge, with tokens cached per
 * scope and renewed on 401; redirects followed by hand so `Authorization` never leaves the
 * registry's host (blob storage gets signed URLs, not our credentials).
 */
export class UpstreamClient {
  private readonly tokens = new Map<string, CachedToken>();
  /** The scheme the registry asked for last; lets the first request carry credentials. */
  private challenge: Challenge | null = null;

  constructor(readonly config: UpstreamConfig, private readonly opts: UpstreamOptions) {}

  get alias(): string {
    return this.config.alias;
  }

  /**
   * Sends a request to `/v2/<path>` and returns the final response (after auth and redirects),
   * retrying network failures, 5xx and 429 with backoff. The caller owns the body.
   */
  async request(path: string, init: { method?: 'GET' | 'HEAD'; headers?: Record<string, string>; scope?: string; signal?: AbortSignal }): Promise<HttpAnswer> {
    const attempts = this.opts.attempts;
    try {
      return await retry(async (attempt) => {
        const res = await this.authorized(path, init);
        if ((res.status >= 500 || res.status === 429) && attempt < attempts - 1) {
          await res.cancel();
          throw new RetryableStatus(res.status);
        }
        return res;
      }, {
        policy: upstreamBackoff(this.opts.backoffMs),
        attempts,
        retryable: (err) => !(err instanceof OciError),
        signal: init.signal,
        onRetry: ({ attempt, error }) => {
          if (error instanceof RetryableStatus) this.opts.log.warn({ upstream: this.alias, path, status: error.status, attempt }, 'upstream error, retrying');
          else this.opts.log.warn({ upstream: this.alias, path, err: (error as Error).message, attempt }, 'upstream request failed');
        },
      });
    } catch (err) {
      if (err instanceof OciError) throw err;
      throw new UpstreamUnreachable(this.alias, err);
    }
  }

  private async authorized(path: string, init: { method?: string; headers?: Record<string, string>; scope?: string; signal?: AbortSignal }): Promise<HttpAnswer> {
    const scope = init.scope ?? '';
    let auth = await this.authorizationFor(scope, false);
    let res = await this.send(path, init, auth);
    if (res.status !== 401) return res;
    const challenge = parseChallenge(res.header('www-authenticate'));
    await res.cancel();
    if (!challenge) throw new OciError('UPSTREAM_ERROR', `upstream ${this.alias} answered 401 without a usable challenge`);
    this.challenge = challenge;
    this.tokens.delete(scope);
    auth = await this.authorizationFor(scope, true);
    if (!auth) throw new OciError('UPSTREAM_ERROR', `upstream ${this.alias} requires ${challenge.scheme} auth and no credentials are configured for it`);
    res = await this.send(path, init, auth);
    if (res.status === 401) {
      await res.cancel();
      throw new OciError('UPSTREAM_ERROR', `upstream ${this.alias} refused the configured credentials (401)`);
    }
    return res;
  }

  private basic(): string | null {
    const c = this.config.credentials;
    if (!c) return null;
    if ('token' in c) return `Bearer ${c.token}`;
    return 'Basic ' + Buffer.from(`${c.username}:${c.password}`).toString('base64');
  }

  private async authorizationFor(scope: string, fresh: boolean): Promise<string | null> {
    const ch = this.challenge;
    if (!ch) return null;
    if (ch.scheme === 'basic') return this.basic();
    if (ch.scheme !== 'bearer') throw new OciError('UPSTREAM_ERROR', `upstream ${this.alias} asks for unsupported auth scheme ${ch.scheme}`);
    const cached = this.tokens.get(scope);
    if (!fresh && cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
    const realm = ch.params.realm;
    if (!realm) throw new OciError('UPSTREAM_ERROR', `upstream ${this.alias} bearer challenge has no realm`);
    const url = new URL(realm);
    if (ch.params.service) url.searchParams.set('service', ch.params.service);
    if (scope) url.searchParams.set('scope', scope);
    const headers: Record<string, string> = {};
    const cred = this.basic();
    if (cred) headers.authorization = cred;
    let res: HttpAnswer;
    try {
      res = await httpRequest(url, { headers, signal: AbortSignal.timeout(this.opts.headersTimeoutMs), trust: this.config.trust });
    } catch (err) {
      throw new UpstreamUnreachable(this.alias, err);
    }
    if (!res.ok) {
      await res.cancel();
      throw new OciError('UPSTREAM_ERROR', `token service of upstream ${this.alias} (${url.origin}${url.pathname}) answered ${res.status}`);
    }
    const body = (await res.json(1 << 20).catch(() => ({}))) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token;
    if (!token) throw new OciError('UPSTREAM_ERROR', `token service of upstream ${this.alias} returned no token`);
    // Renew a little early so a token never expires between check and use.
    const ttl = Math.max(10, (body.expires_in ?? 60) - 5) * 1000;
    this.tokens.set(scope, { token, expiresAt: Date.now() + ttl });
    return `Bearer ${token}`;
  }

  private async send(path: string, init: { method?: string; headers?: Record<string, string>; signal?: AbortSignal }, auth: string | null): Promise<HttpAnswer> {
    const origin = new URL(this.config.url);
    let url = new URL(`${this.config.url}/v2/${path}`);
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const headers: Record<string, string> = { ...(init.headers ?? {}) };
      if (auth && url.host === origin.host) headers.authorization = auth;
      // The timeout covers the wait for headers only; the body may legitimately stream for
      // minutes (the caller watches it for stalls with its own signal).
      const res = await httpRequest(url, { method: init.method ?? 'GET', headers, signal: init.signal, headersTimeoutMs: this.opts.headersTimeoutMs, trust: this.config.trust });
      const location = res.header('location');
      if (res.status >= 300 && res.status < 400 && location) {
        await res.cancel();
        url = new URL(location, url);
        if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new OciError('UPSTREAM_ERROR', `upstream ${this.alias} redirected ${path} to a non-HTTP URL`);
        continue;
      }
      return res;
    }
    throw new OciError('UPSTREAM_ERROR', `upstream ${this.alias}: more than ${MAX_REDIRECTS} redirects for ${path}`);
  }
}
