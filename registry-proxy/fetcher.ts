import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { retry } from '../common/backoff.js';
import { Digester } from '../common/digest.js';
import type { Logger } from '../common/log.js';
import { OciError } from './errors.js';
import type { ProxyMetrics } from './metrics.js';
import type { ProxyCache } from './cache.js';
import { UpstreamUnreachable, upstreamBackoff, type UpstreamClient } from './upstream.js';

export interface FetchOptions {
  /** Abort and resume an upstream body that sent nothing for this long. */
  stallMs: number;
  /** Upstream connections tried per fetch (each one resumes where the last stopped). */
  attempts: number;
  backoffMs: number;
}

const WRITE_BATCH = 1 << 20;

export const DEFAULT_FETCH_OPTIONS: FetchOptions = { stallMs: 30_000, attempts: 5, backoffMs: 250 };

/**
 * One upstream download of one blob, shared by every client asking for it. Bytes land in the
 * partial file in order; `arrived` says how many are there, `verified` turns true only after the
 * whole blob hashed to its digest and was moved into the cache.
 */
export class BlobFetch {
  size: number | undefined;
  arrived = 0;
  verified = false;
  error: Error | undefined;
  /** Resolves when the size is known (readers can plan their response), rejects on failure. */
  readonly ready: Promise<number>;
  readonly done: Promise<void>;
  private resolveReady!: (size: number) => void;
  private rejectReady!: (err: Error) => void;
  private waiters: Array<() => void> = [];

  constructor(readonly digest: string, readonly partialPath: string, readonly blobPath: string) {
    this.ready = new Promise((res, rej) => { this.resolveReady = res; this.rejectReady = rej; });
    this.ready.catch(() => undefined);
    let settle!: () => void;
    this.done = new Promise<void>((res) => { settle = res; });
    this.settle = settle;
  }

  private readonly settle: () => void;

  get finished(): boolean {
    return this.verified || this.error !== undefined;
  }

  /** Resolves at the next change (bytes arrived, verified, failed). */
  changed(): Promise<void> {
    if (this.finished) return Promise.resolve();
    return new Promise((res) => this.waiters.push(res));
  }

  notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  sized(size: number): void {
    this.size = size;
    this.resolveReady(size);
  }

  finish(): void {
    this.verified = true;
    this.notify();
    this.settle();
  }

  fail(err: Error): void {
    this.error = err;
    this.rejectReady(err);
    this.notify();
    this.settle();
  }
}

/** Hashes the bytes already in a partial file, so a resumed fetch verifies the whole blob. */
async function hashPrefix(path: string, digester: Digester): Promise<void> {
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) digester.update(chunk as Buffer);
}

/**
 * Single-flight upstream blob fetches. The first request starts one; later ones join it. The fetch
 * keeps going when clients hang up, so the cache fills and the next resume is served locally.
 */
export class BlobFetcher {
  private readonly inflight = new Map<string, BlobFetch>();
  /** Aborts every upstream transfer when the proxy shuts down. */
  private readonly shutdown = new AbortController();

  constructor(
    private readonly cache: ProxyCache,
    private readonly metrics: ProxyMetrics,
    private readonly log: Logger,
    private readonly opts: FetchOptions = DEFAULT_FETCH_OPTIONS,
  ) {
    metrics.gauge('berth_proxy_inflight_fetches', () => this.inflight.size);
  }

  /** Stops all upstream transfers; their partial files stay for the next start to resume. */
  async close(): Promise<void> {
    this.shutdown.abort(new Error('registry proxy shutting down'));
    await Promise.all([...this.inflight.values()].map((f) => f.done));
  }

  get(digest: string): BlobFetch | undefined {
    return this.inflight.get(digest);
  }

  get active(): number {
    return this.inflight.size;
  }

  /** Joins the fetch of `digest` or starts one; `log` (the starting request's) ties its lines to that request id. */
  start(upstream: UpstreamClient, repository: string, digest: string, log: Logger = this.log): BlobFetch {
    const existing = this.inflight.get(digest);
    if (existing) return existing;
    const fetch = new BlobFetch(digest, this.cache.partialPath(digest), this.cache.blobPath(digest));
    this.inflight.set(digest, fetch);
    void this.run(fetch, upstream, repository, log).then(
      () => fetch.finish(),
      (err: Error) => fetch.fail(err),
    ).finally(() => this.inflight.delete(digest));
    return fetch;
  }

  private async run(f: BlobFetch, upstream: UpstreamClient, repository: string, parentLog: Logger): Promise<void> {
    const log = parentLog.child({ digest: f.digest, upstream: upstream.alias, repository });
    const hash = { digester: new Digester() };
    const fh = await open(f.partialPath, 'a+');
    try {
      const onDisk = (await fh.stat()).size;
      this.cache.partialWritten(f.digest, onDisk);
      if (onDisk > 0) {
        await hashPrefix(f.partialPath, hash.digester);
        f.arrived = onDisk;
        log.info({ bytes: onDisk }, 'resuming blob from partial file');
      }
      let lastError: unknown;
      let before = f.arrived;
      const fatal = (err: unknown) => err instanceof OciError && err.status < 500;
      try {
        await retry(async () => {
          before = f.arrived;
          try {
            if ((await this.transfer(f, fh, hash, upstream, repository, log)) || (f.size !== undefined && f.arrived >= f.size)) return;
          } catch (err) {
            if (fatal(err)) throw err;
            lastError = err;
            this.metrics.inc('berth_proxy_upstream_errors_total', { upstream: upstream.alias, reason: 'blob-transfer' });
            log.warn({ err: (err as Error).message, arrived: f.arrived, size: f.size }, 'upstream blob transfer interrupted');
            throw err;
          }
          throw new Error(`upstream ended the body at ${f.arrived} of ${f.size ?? '?'} bytes`);
        }, {
          policy: upstreamBackoff(this.opts.backoffMs),
          attempts: this.opts.attempts,
          retryable: (err) => !fatal(err),
          // A connection that made progress does not use up an attempt: slow links cut often.
          progressed: () => f.arrived !== before,
          onRetry: ({ failures }) => {
            if (failures === 0) this.metrics.inc('berth_proxy_upstream_resumes_total', { upstream: upstream.alias });
          },
          signal: this.shutdown.signal,
        });
      } catch (err) {
        if (fatal(err)) throw err;
        lastError ??= err;
      }
      if (f.size === undefined || f.arrived !== f.size) {
        throw lastError instanceof OciError ? lastError : new OciError('UPSTREAM_UNAVAILABLE', `upstream ${upstream.alias} did not deliver blob ${f.digest} (${f.arrived} of ${f.size ?? '?'} bytes): ${lastError instanceof Error ? lastError.message : 'gave up'}`);
      }
      const actual = hash.digester.digest();
      if (actual !== f.digest) {
        this.metrics.inc('berth_proxy_digest_mismatches_total', { upstream: upstream.alias, kind: 'blob' });
        log.error({ actual }, 'upstream blob does not match its digest; discarded');
        await fh.close().catch(() => undefined);
        await this.cache.dropPartial(f.digest);
        throw new OciError('UPSTREAM_DIGEST_MISMATCH', `upstream ${upstream.alias} sent bytes for ${f.digest} that hash to ${actual}; refused and not cached`);
      }
      await fh.sync();
      await fh.close();
      await this.cache.commit(f.digest, f.partialPath, f.size);
      log.info({ size: f.size }, 'blob verified and cached');
    } finally {
      await fh.close().catch(() => undefined);
      // What a failed fetch leaves counts toward the cache budget until it is resumed, evicted or expires.
      await this.cache.partialIdle(f.digest);
    }
  }

  /** One upstream connection; returns true when the blob is complete on disk. */
  private async transfer(f: BlobFetch, fh: FileHandle, hash: { digester: Digester }, upstream: UpstreamClient, repository: string, log: Logger): Promise<boolean> {
    const stall = new AbortController();
    const headers: Record<string, string> = {};
    if (f.arrived > 0) headers.range = `bytes=${f.arrived}-`;
    const signal = AbortSignal.any([stall.signal, this.shutdown.signal]);
    const res = await upstream.request(`${repository}/blobs/${f.digest}`, { headers, scope: `repository:${repository}:pull`, signal });
    if (res.status === 404) {
      await res.cancel();
      throw new OciError('BLOB_UNKNOWN', `blob ${f.digest} is not in ${upstream.alias}/${repository}`);
    }
    if (res.status === 416 && f.arrived > 0) {
      // The partial file already holds every byte; the digest check decides whether it is right.
      await res.cancel();
      const total = /\/(\d+)$/.exec(res.header('content-range') ?? '')?.[1];
      f.sized(total ? Number(total) : f.arrived);
      return true;
    }
    if (res.status === 200 && f.arrived > 0) {
      log.info({ had: f.arrived }, 'upstream ignored Range; restarting blob from zero');
      await fh.truncate(0);
      hash.digester = new Digester();
      f.arrived = 0;
      this.cache.partialWritten(f.digest, 0);
    } else if (res.status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.header('content-range') ?? '');
      if (!m || Number(m[1]) !== f.arrived) {
        await res.cancel();
        throw new Error(`upstream answered Range bytes=${f.arrived}- with Content-Range ${res.header('content-range')}`);
      }
      if (f.size === undefined) f.sized(Number(m[3]));
    } else if (res.status !== 200) {
      await res.cancel();
      throw new OciError(res.status >= 500 ? 'UPSTREAM_UNAVAILABLE' : 'UPSTREAM_ERROR', `upstream ${upstream.alias} answered ${res.status} for blob ${f.digest}`);
    }
    if (res.status === 200 && f.size === undefined) {
      const len = res.header('content-length');
      if (len !== undefined) f.sized(Number(len));
    }
    const timer = setTimeout(() => stall.abort(new Error(`upstream sent nothing for ${this.opts.stallMs} ms`)), this.opts.stallMs);
    // Network chunks are small; the disk gets them in batches of about WRITE_BATCH bytes (one
    // syscall each), and readers are woken once per batch.
    let batch: Uint8Array[] = [];
    let batchBytes = 0;
    const flush = async (): Promise<void> => {
      if (batchBytes === 0) return;
      const chunks = batch;
      const n = batchBytes;
      batch = [];
      batchBytes = 0;
      await fh.writev(chunks);
      f.arrived += n;
      this.cache.partialWritten(f.digest, f.arrived);
      this.metrics.inc('berth_proxy_upstream_bytes_total', { upstream: upstream.alias }, n);
      f.notify();
    };
    try {
      for await (const value of res.body) {
        timer.refresh();
        if (f.size !== undefined && f.arrived + batchBytes + value.length > f.size) throw new OciError('UPSTREAM_DIGEST_MISMATCH', `upstream ${upstream.alias} sent more than the ${f.size} bytes of ${f.digest}`);
        hash.digester.update(value);
        batch.push(value);
        batchBytes += value.length;
        if (batchBytes >= WRITE_BATCH) await flush();
      }
      await flush();
    } catch (err) {
      // What did arrive is a valid prefix (hashed in order): keep it on disk for the resume.
      if (!(err instanceof OciError)) await flush().catch(() => undefined);
      if (err instanceof UpstreamUnreachable || err instanceof OciError) throw err;
      throw stall.signal.aborted ? (stall.signal.reason as Error) : err;
    } finally {
      clearTimeout(timer);
    }
    if (f.size === undefined) f.sized(f.arrived);
    return f.arrived >= f.size!;
  }
}

