import { mkdir, readdir, readFile, rename, rm, stat, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir, writeFileAtomic } from '../common/atomic-file.js';
import { digestHex } from '../common/digest.js';
import type { Logger } from '../common/log.js';
import { chooseEvictions, type CacheEntry } from './eviction.js';

export interface TagRecord {
  digest: string;
  mediaType: string;
  resolvedAt: number;
}

export interface StoredManifest {
  bytes: Buffer;
  mediaType: string;
}

/**
 * The content-addressed cache on disk:
 *   blobs/<hex>            verified blobs (the file name is their sha256)
 *   partial/<hex>          upstream fetches in progress, kept across restarts for resume
 *   manifests/<hex>(.type) verified manifests and their media type
 *   tags/<alias>/<repo>/_tags/<tag>.json  last resolution of a tag (for TTL and upstream-down fallback)
 * Names are validated before they reach here, and digests become hex, so no path can escape.
 */
/** How long a partial file no fetch is writing is kept for a resume (issue 14, finding 12). */
export const PARTIAL_TTL_MS = 24 * 3600_000;

export class ProxyCache {
  private readonly entries = new Map<string, CacheEntry>();
  private readonly pins = new Map<string, number>();
  private total = 0;
  /**
   * Partial files count toward `maxBytes` like blobs (keys `partial:<digest>`): a hostile upstream
   * that sends half of every blob must not fill the disk past the budget. One being written is kept;
   * an idle one is evicted like a blob, and deleted once older than `partialTtlMs`.
   */
  private readonly writing = new Set<string>();

  constructor(readonly dir: string, private readonly maxBytes: number | undefined, private readonly log: Logger, private readonly partialTtlMs = PARTIAL_TTL_MS) {}

  async open(): Promise<void> {
    for (const sub of ['blobs', 'partial', 'manifests', 'tags']) await mkdir(join(this.dir, sub), { recursive: true });
    for (const name of await readdir(join(this.dir, 'partial'))) {
      const st = await stat(join(this.dir, 'partial', name)).catch(() => null);
      if (st && /^[a-f0-9]{64}$/.test(name)) this.add(`partial:sha256:${name}`, st.size, st.mtimeMs);
      else await rm(join(this.dir, 'partial', name), { force: true });
    }
    await this.expirePartials();
    for (const name of await readdir(join(this.dir, 'blobs'))) {
      const path = join(this.dir, 'blobs', name);
      if (!/^[a-f0-9]{64}$/.test(name)) {
        // A leftover temp file from a crash between write and rename: never valid content.
        await rm(path, { force: true });
        continue;
      }
      const st = await stat(path);
      this.add(`sha256:${name}`, st.size, st.mtimeMs);
    }
    this.log.info({ blobs: this.blobCount, bytes: this.total, dir: this.dir }, 'cache opened');
  }

  get sizeBytes(): number {
    return this.total;
  }

  get blobCount(): number {
    let n = 0;
    for (const key of this.entries.keys()) if (!key.startsWith('partial:')) n++;
    return n;
  }

  blobPath(digest: string): string {
    return join(this.dir, 'blobs', digestHex(digest));
  }

  partialPath(digest: string): string {
    return join(this.dir, 'partial', digestHex(digest));
  }

  /** Size of a cached blob, or undefined; marks it used (LRU). */
  lookup(digest: string): number | undefined {
    const e = this.entries.get(digest);
    if (!e) return undefined;
    e.lastUsed = Date.now();
    // The file's mtime carries recency across restarts; best effort, off the hot path.
    const t = new Date(e.lastUsed);
    utimes(this.blobPath(digest), t, t).catch(() => undefined);
    return e.size;
  }

  /** Keeps a blob from eviction while it is served; returns the release function. */
  pin(digest: string): () => void {
    this.pins.set(digest, (this.pins.get(digest) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.pins.get(digest) ?? 1) - 1;
      if (n <= 0) this.pins.delete(digest);
      else this.pins.set(digest, n);
      void this.evict();
    };
  }

  /** Moves a verified, fsynced file into the cache under its digest. */
  async commit(digest: string, verifiedFile: string, size: number): Promise<void> {
    await rename(verifiedFile, this.blobPath(digest));
    await fsyncDir(join(this.dir, 'blobs')).catch(() => undefined);
    this.forget(`partial:${digest}`);
    this.add(digest, size, Date.now());
    await this.evict();
  }

  /** A fetch is writing `digest`'s partial file, which now holds `size` bytes. */
  partialWritten(digest: string, size: number): void {
    this.writing.add(digest);
    this.add(`partial:${digest}`, size, Date.now());
  }

  /** The fetch of `digest` ended: its partial file (if any is left) is idle, evictable and expires. */
  async partialIdle(digest: string): Promise<void> {
    this.writing.delete(digest);
    await this.expirePartials();
    await this.evict();
  }

  private forget(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.total -= e.size;
  }

  private fileOf(key: string): string {
    return key.startsWith('partial:') ? this.partialPath(key.slice('partial:'.length)) : this.blobPath(key);
  }

  private async expirePartials(): Promise<void> {
    const before = Date.now() - this.partialTtlMs;
    for (const e of [...this.entries.values()]) {
      if (!e.key.startsWith('partial:') || e.lastUsed > before || this.writing.has(e.key.slice('partial:'.length))) continue;
      this.forget(e.key);
      await unlink(this.fileOf(e.key)).catch(() => undefined);
      this.log.info({ digest: e.key.slice('partial:'.length), size: e.size }, 'expired partial download');
    }
  }

  private add(digest: string, size: number, lastUsed: number): void {
    const old = this.entries.get(digest);
    if (old) this.total -= old.size;
    this.entries.set(digest, { key: digest, size, lastUsed });
    this.total += size;
  }

  async evict(): Promise<void> {
    if (this.maxBytes === undefined) return;
    const busy = (key: string) => this.pins.has(key) || (key.startsWith('partial:') && this.writing.has(key.slice('partial:'.length)));
    for (const key of chooseEvictions(this.entries.values(), this.maxBytes, busy)) {
      const e = this.entries.get(key);
      if (!e) continue;
      this.forget(key);
      await unlink(this.fileOf(key)).catch(() => undefined);
      this.log.info({ digest: key.replace(/^partial:/, ''), size: e.size, partial: key.startsWith('partial:') }, 'evicted blob');
    }
  }

  async readManifest(digest: string): Promise<StoredManifest | null> {
    const base = join(this.dir, 'manifests', digestHex(digest));
    try {
      const [bytes, mediaType] = await Promise.all([readFile(base), readFile(`${base}.type`, 'utf8')]);
      return { bytes, mediaType };
    } catch {
      return null;
    }
  }

  async writeManifest(digest: string, bytes: Uint8Array, mediaType: string): Promise<void> {
    const base = join(this.dir, 'manifests', digestHex(digest));
    // Type first: a manifest file without its type is unreadable, the reverse would be wrong.
    await writeFileAtomic(`${base}.type`, mediaType);
    await writeFileAtomic(base, bytes);
  }

  private tagPath(name: string, tag: string): string {
    // `_tags` cannot be a repository component, so a tag file never collides with a repository path.
    return join(this.dir, 'tags', ...name.split('/'), '_tags', `${tag}.json`);
  }

  async readTag(name: string, tag: string): Promise<TagRecord | null> {
    try {
      return JSON.parse(await readFile(this.tagPath(name, tag), 'utf8')) as TagRecord;
    } catch {
      return null;
    }
  }

  async writeTag(name: string, tag: string, record: TagRecord): Promise<void> {
    await writeFileAtomic(this.tagPath(name, tag), JSON.stringify(record));
  }

  async dropPartial(digest: string): Promise<void> {
    this.forget(`partial:${digest}`);
    await rm(this.partialPath(digest), { force: true });
  }

  /** Test and ops hook: is this digest's verified file on disk? */
  async onDisk(digest: string): Promise<boolean> {
    return stat(this.blobPath(digest)).then(() => true, () => false);
  }
}

