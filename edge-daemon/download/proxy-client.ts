import type { HttpsTrust } from '../../common/tls-trust.js';
import { open } from 'node:fs/promises';
import { retry, type BackoffPolicy } from '../../common/backoff.js';
import { Digester, sha256Digest } from '../../common/digest.js';
import type { Logger } from '../gateway-log.js';
import { MANIFEST_ACCEPT } from '../../common/oci.js';
import type { Upstream } from '../../manifests/image-ref.js';
import { BlobVerificationError, ImageUnavailableError, TransientError } from './errors.js';
import type { GcPacer } from './gc-pacer.js';
import { httpRequest, isConnectionError, type HttpAnswer } from '../../common/http-client.js';
import { bodyPlan, resumeStart } from './resume.js';
import type { DownloadStore } from './store.js';

export interface ProxyClientOptions {
  baseUrl: string;
  pullToken: () => Promise<string>;
  log: Logger;
  /** A request that receives nothing for this long is cut and retried (resuming). */
  idleTimeoutMs: number;
  /** Attempts per manifest or blob for transient failures (cut connection, 5xx, idle timeout). */
  attempts: number;
  /** Waits between those attempts. */
  backoff: BackoffPolicy;
  /** Told every byte written, so dead socket buffers are collected while they are few. */
  pacer?: GcPacer;
  /** The fleet's CA for an https: proxy (`--ca-file`). */
  trust?: HttpsTrust;
}

/** One blob to fetch: where it lives on the proxy and which image asked for it (for messages). */
export interface BlobTarget {
  repository: string;
  digest: string;
  size: number;
  image: string;
  /** Where the proxy serves it, when not `/v2/<repository>/blobs/<digest>` (a delta: served like a blob, same ETag and Range). */
  path?: string;
}

const MAX_SMALL_BLOB = 16 << 20;

/** Aborts a request when no byte arrives for `ms`; every chunk pushes the deadline out. */
class IdleWatch {
  readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  fired = false;
  constructor(
    private readonly ms: number,
    private readonly what: string,
  ) {
    this.touch();
  }
  touch(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.fired = true;
      this.controller.abort(new TransientError(`no data for ${this.ms} ms from the registry proxy (${this.what})`));
    }, this.ms);
  }
  clear(): void {
    clearTimeout(this.timer);
  }
}

class DigestMismatch extends Error {
  constructor(readonly actual: string) {
    super(`bytes hash to ${actual}`);
  }
}

/**
 * The download channel's HTTP client: the OCI Distribution read API of the registry proxy, with
 * the device's pull token, idle timeouts, retries with backoff and jitter, and resumable blobs.
 */
export class ProxyClient {
  private upstreamList: Upstream[] | undefined;

  constructor(private readonly opts: ProxyClientOptions) {}

  async upstreams(signal?: AbortSignal): Promise<Upstream[]> {
    if (this.upstreamList) return this.upstreamList;
    const list = await this.withRetries('upstream list', signal, async () => {
      // The upstream list is public (protocol.ts); the pull token stays off requests that need none.
      const { res, watch } = await this.open('/berth/v1/upstreams', {}, signal, 'upstream list', false);
      try {
        if (res.status !== 200) {
          res.discard();
          throw this.statusError(res.status, 'the upstream list (/berth/v1/upstreams)');
        }
        let body: { upstreams?: { alias?: unknown; url?: unknown; host?: unknown }[] };
        try {
          body = JSON.parse((await res.bytes(1 << 20)).toString('utf8'));
        } catch (err) {
          if (isConnectionError(err)) throw err;
          throw new Error('registry proxy answered /berth/v1/upstreams with something that is not JSON');
        }
        if (!Array.isArray(body.upstreams)) throw new Error('registry proxy answered /berth/v1/upstreams without an upstreams list');
        // Older proxies give only the host; an https URL of it maps references the same way.
        return body.upstreams.map((u) => ({
          alias: String(u.alias),
          url: typeof u.url === 'string' ? u.url : `https://${String(u.host)}`,
        }));
      } finally {
        watch.clear();
      }
    });
    this.upstreamList = list;
    return list;
  }

  /** A manifest by digest, its bytes verified against the digest (once retried on mismatch). */
  async manifest(repository: string, digest: string, image: string, signal?: AbortSignal): Promise<{ bytes: Buffer; mediaType: string }> {
    return this.smallVerified(`/v2/${repository}/manifests/${digest}`, { Accept: MANIFEST_ACCEPT }, digest, image, `manifest ${digest}`, signal);
  }

  /** A small blob (an image config) into memory, verified. */
  async smallBlob(repository: string, digest: string, image: string, signal?: AbortSignal): Promise<Buffer> {
    return (await this.smallVerified(`/v2/${repository}/blobs/${digest}`, {}, digest, image, `config ${digest}`, signal)).bytes;
  }

  private async smallVerified(
    path: string,
    headers: Record<string, string>,
    digest: string,
    image: string,
    what: string,
    signal?: AbortSignal,
  ): Promise<{ bytes: Buffer; mediaType: string }> {
    let mismatches = 0;
    for (;;) {
      const got = await this.withRetries(`${what} of ${image}`, signal, async () => {
        const { res, watch } = await this.open(path, headers, signal, what);
        try {
          if (res.status !== 200) {
            res.discard();
            if (res.status === 404) throw new ImageUnavailableError(image, `${what} not found (404)`);
            throw this.statusError(res.status, `${what} of image ${image}`);
          }
          const chunks: Buffer[] = [];
          let length = 0;
          for await (const chunk of res.body) {
            watch.touch();
            length += chunk.length;
            if (length > MAX_SMALL_BLOB) throw new Error(`${what} of image ${image} is larger than ${MAX_SMALL_BLOB} bytes`);
            chunks.push(chunk);
          }
          return { bytes: Buffer.concat(chunks), mediaType: res.header('content-type')?.split(';')[0].trim() ?? '' };
        } catch (err) {
          throw this.transportError(err, signal, watch, `${what} of image ${image}`);
        } finally {
          watch.clear();
        }
      });
      const actual = sha256Digest(got.bytes);
      if (actual === digest) return got;
      this.opts.log.warn({ image, digest, actual }, `${what} failed verification`);
      if (++mismatches > 1) throw new BlobVerificationError(digest, image, actual);
    }
  }

  /** The first `n` bytes of a blob-like resource (a delta's header), into memory: a Range request, retried. */
  async leadingBytes(path: string, n: number, what: string, signal?: AbortSignal): Promise<Buffer> {
    return this.withRetries(what, signal, async () => {
      const { res, watch } = await this.open(path, { Range: `bytes=0-${n - 1}` }, signal, what);
      try {
        if (res.status !== 200 && res.status !== 206) {
          res.discard();
          throw this.statusError(res.status, what);
        }
        // A 200 (a proxy ignoring Range) brings the whole body: keep the head, drop the rest.
        const chunks: Buffer[] = [];
        let got = 0;
        for await (const chunk of res.body) {
          watch.touch();
          chunks.push(chunk);
          got += chunk.length;
          if (got >= n) break;
        }
        res.discard();
        if (got < n) throw new TransientError(`${what}: the answer ended after ${got} of ${n} bytes`);
        return Buffer.concat(chunks, got).subarray(0, n);
      } catch (err) {
        throw this.transportError(err, signal, watch, what);
      } finally {
        watch.clear();
      }
    });
  }

  /**
   * Downloads a blob into the store, resuming from its partial file. `onBytes` receives the bytes
   * on disk for this blob. A blob that does not hash to its digest is discarded and fetched once
   * more from zero; a second mismatch is a BlobVerificationError and nothing reaches the store.
   */
  async downloadBlob(store: DownloadStore, target: BlobTarget, onBytes: (onDisk: number) => void, signal?: AbortSignal): Promise<void> {
    let mismatches = 0;
    for (;;) {
      try {
        await this.withRetries(`blob ${target.digest} of ${target.image}`, signal, () => this.downloadOnce(store, target, onBytes, signal));
        return;
      } catch (err) {
        if (!(err instanceof DigestMismatch)) throw err;
        await store.discardPartial(target.digest);
        onBytes(0);
        this.opts.log.warn({ image: target.image, digest: target.digest, actual: err.actual }, 'blob failed verification; discarded');
        if (++mismatches > 1) throw new BlobVerificationError(target.digest, target.image, err.actual);
      }
    }
  }

  private async downloadOnce(store: DownloadStore, t: BlobTarget, onBytes: (n: number) => void, signal?: AbortSignal): Promise<void> {
    const onDisk = await store.partialSize(t.digest);
    const start = resumeStart(onDisk, t.size, t.digest);
    if (start.kind === 'verify') {
      const d = await store.hashPartial(t.digest, onDisk);
      const actual = d.digest();
      if (onDisk !== t.size || actual !== t.digest) throw new DigestMismatch(actual);
      await store.commitPartial(t.digest);
      onBytes(t.size);
      return;
    }
    let offset = start.offset;
    // Node cannot persist a hash's internal state, so a resumed digest is seeded by re-reading the
    // partial bytes: one sequential read, cheaper than fetching them again over a slow link.
    let digester = await store.hashPartial(t.digest, offset);
    onBytes(offset);
    if (offset > 0) this.opts.log.info({ image: t.image, digest: t.digest, offset, size: t.size }, 'resuming blob download');
    const what = `blob ${t.digest} of image ${t.image}`;
    const { res, watch } = await this.open(t.path ?? `/v2/${t.repository}/blobs/${t.digest}`, start.headers, signal, what);
    try {
      const plan = bodyPlan(res.status, res.header('content-range') ?? null, offset, t.size);
      switch (plan.kind) {
        case 'append':
          break;
        case 'restart':
          offset = 0;
          digester = new Digester();
          break;
        case 'discard':
          res.discard();
          await store.discardPartial(t.digest);
          onBytes(0);
          throw new TransientError(`${what}: the proxy's range does not continue our partial file; starting over`);
        case 'unavailable':
          res.discard();
          throw new ImageUnavailableError(t.image, `blob ${t.digest} not found (404)`);
        case 'unauthorized':
        case 'fail':
          res.discard();
          throw this.statusError(res.status, what);
      }
      const fh = await open(store.partialPath(t.digest), offset === 0 ? 'w' : 'a', 0o600);
      let written = offset;
      try {
        for await (const chunk of res.body) {
          watch.touch();
          if (written + chunk.length > t.size) throw new DigestMismatch(`more than ${t.size} bytes`);
          digester.update(chunk);
          // Awaiting each write is the backpressure: at most one chunk in memory per download.
          await fh.write(chunk);
          written += chunk.length;
          this.opts.pacer?.moved(chunk.length);
          onBytes(written);
        }
        await fh.sync();
      } finally {
        // Closing (not destroying) keeps every byte already written: the next attempt resumes there.
        await fh.close();
      }
      if (written !== t.size) throw new TransientError(`${what}: connection ended at ${written} of ${t.size} bytes`);
      const actual = digester.digest();
      if (actual !== t.digest) throw new DigestMismatch(actual);
      await store.commitPartial(t.digest);
    } catch (err) {
      throw this.transportError(err, signal, watch, what);
    } finally {
      watch.clear();
    }
  }

  /** GET with the pull token; a 401 fetches a fresh token once and tries again. */
  private async open(
    path: string,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
    what: string,
    authorized = true,
  ): Promise<{ res: HttpAnswer; watch: IdleWatch }> {
    let renewed = !authorized;
    for (;;) {
      const auth: Record<string, string> = authorized ? { Authorization: `Bearer ${await this.opts.pullToken()}` } : {};
      const watch = new IdleWatch(this.opts.idleTimeoutMs, what);
      const signals = signal ? [signal, watch.controller.signal] : [watch.controller.signal];
      let res: HttpAnswer;
      try {
        res = await httpRequest(new URL(path, this.opts.baseUrl), { headers: { ...headers, ...auth }, signal: AbortSignal.any(signals), trust: this.opts.trust });
      } catch (err) {
        watch.clear();
        throw this.transportError(err, signal, watch, what);
      }
      if (res.status === 401 && !renewed) {
        renewed = true;
        watch.clear();
        res.discard();
        this.opts.log.info({ what }, 'registry proxy refused the pull token; asking for a fresh one');
        continue;
      }
      return { res, watch };
    }
  }

  private statusError(status: number, what: string): Error {
    if (status >= 500 || status === 429 || status === 408) return new TransientError(`registry proxy answered HTTP ${status} for ${what}`);
    if (status === 401) return new Error(`registry proxy refused the pull token (HTTP 401, also after renewing it) for ${what}`);
    if (status === 403) return new Error(`registry proxy does not allow this device ${what} (HTTP 403): not in its desired state?`);
    return new Error(`registry proxy answered HTTP ${status} for ${what}`);
  }

  /** Sorts a thrown value into: the caller's abort, a transient failure, or the error itself. */
  private transportError(err: unknown, signal: AbortSignal | undefined, watch: IdleWatch, what: string): unknown {
    if (signal?.aborted) return signal.reason ?? err;
    if (watch.fired) return new TransientError(`no data for ${this.opts.idleTimeoutMs} ms from the registry proxy (${what})`);
    if (err instanceof TransientError || err instanceof DigestMismatch || err instanceof ImageUnavailableError || err instanceof BlobVerificationError) return err;
    if (isConnectionError(err)) {
      return new TransientError(`connection to the registry proxy failed for ${what}: ${(err as Error).message}`, { cause: err });
    }
    return err;
  }

  private async withRetries<T>(what: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    let tried = 0;
    try {
      return await retry(
        (attempt) => {
          tried = attempt + 1;
          return fn();
        },
        {
          policy: this.opts.backoff,
          attempts: this.opts.attempts,
          retryable: (err) => err instanceof TransientError,
          signal,
          onRetry: ({ attempt, delayMs, error }) => this.opts.log.warn({ what, attempt: attempt + 1, delayMs, err: (error as Error).message }, 'download attempt failed; retrying'),
        },
      );
    } catch (err) {
      if (err instanceof TransientError) throw new Error(`${what}: gave up after ${tried} attempts: ${err.message}`, { cause: err });
      throw err;
    }
  }
}
