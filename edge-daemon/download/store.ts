import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir, writeFileAtomic } from '../../common/atomic-file.js';
import { DigestMismatchError, Digester, digestHex, isDigest, sha256Digest } from '../../common/digest.js';

/**
 * The download channel's store (the registry proxy's cache is another thing): content-addressed,
 * `<stateDir>/blobs/sha256/<hex>` holds only verified blobs (manifests, configs, layers);
 * `<stateDir>/blobs/partial/<hex>` holds downloads in progress. A blob reaches `sha256/` only by
 * fsync + rename after its digest matched (small ones through `common/atomic-file`), so a crash
 * leaves either nothing or a partial file to resume, never a wrong blob under a digest's name.
 */
export class DownloadStore {
  readonly root: string;
  readonly blobDir: string;
  readonly partialDir: string;
  /** Layers being rebuilt from deltas and base tars taken out of the engine (same filesystem: a rename moves them in). */
  readonly workDir: string;

  constructor(stateDir: string) {
    this.root = join(stateDir, 'blobs');
    this.blobDir = join(this.root, 'sha256');
    this.partialDir = join(this.root, 'partial');
    this.workDir = join(this.root, 'rebuild');
  }

  async init(): Promise<void> {
    await mkdir(this.blobDir, { recursive: true, mode: 0o700 });
    await mkdir(this.partialDir, { recursive: true, mode: 0o700 });
    await mkdir(this.workDir, { recursive: true, mode: 0o700 });
  }

  /** Moves a file the caller verified against `digest` (a rebuilt layer tar) into place. */
  async adopt(digest: string, path: string): Promise<void> {
    await rename(path, this.blobPath(digest));
    await fsyncDir(this.blobDir).catch(() => undefined);
  }

  /** Drops what a crash left in the work dir; only while nothing is being rebuilt. */
  async clearWork(): Promise<void> {
    await rm(this.workDir, { recursive: true, force: true });
    await mkdir(this.workDir, { recursive: true, mode: 0o700 });
  }

  blobPath(digest: string): string {
    return join(this.blobDir, digestHex(digest));
  }

  partialPath(digest: string): string {
    return join(this.partialDir, digestHex(digest));
  }

  /** Size of the stored blob, or undefined when the store does not have it. */
  async size(digest: string): Promise<number | undefined> {
    try {
      return (await stat(this.blobPath(digest))).size;
    } catch {
      return undefined;
    }
  }

  async has(digest: string): Promise<boolean> {
    return (await this.size(digest)) !== undefined;
  }

  async partialSize(digest: string): Promise<number> {
    try {
      return (await stat(this.partialPath(digest))).size;
    } catch {
      return 0;
    }
  }

  /** A small stored blob (manifest, config), re-verified on read: the disk is not trusted blindly. */
  async read(digest: string): Promise<Buffer | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.blobPath(digest));
    } catch {
      return undefined;
    }
    const actual = sha256Digest(bytes);
    if (actual !== digest) {
      await rm(this.blobPath(digest), { force: true });
      return undefined;
    }
    return bytes;
  }

  /** Stores small verified bytes (manifest, config) atomically. */
  async write(digest: string, bytes: Uint8Array): Promise<void> {
    const actual = sha256Digest(bytes);
    if (actual !== digest) throw new DigestMismatchError(digest, actual, 'blob to store');
    if (await this.has(digest)) return;
    await writeFileAtomic(this.blobPath(digest), bytes, { mode: 0o600 });
  }

  /** Moves a completed, verified partial file into place. */
  async commitPartial(digest: string): Promise<void> {
    const fh = await open(this.partialPath(digest), 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(this.partialPath(digest), this.blobPath(digest));
    // A rename is durable only once its directory is synced; best effort where a platform refuses.
    await fsyncDir(this.blobDir).catch(() => undefined);
  }

  async discardPartial(digest: string): Promise<void> {
    await rm(this.partialPath(digest), { force: true });
  }

  /** Hashes the first `length` bytes of the partial file: the seed of a resumed streaming digest. */
  async hashPartial(digest: string, length: number): Promise<Digester> {
    const d = new Digester();
    if (length <= 0) return d;
    const stream = createReadStream(this.partialPath(digest), { start: 0, end: length - 1, highWaterMark: 1 << 20 });
    for await (const chunk of stream) d.update(chunk as Buffer);
    return d;
  }

  async list(): Promise<string[]> {
    return (await readdir(this.blobDir).catch(() => [] as string[])).map((h) => `sha256:${h}`).filter(isDigest);
  }

  async listPartials(): Promise<string[]> {
    return (await readdir(this.partialDir).catch(() => [] as string[])).map((h) => `sha256:${h}`).filter(isDigest);
  }

  async remove(digest: string): Promise<void> {
    await rm(this.blobPath(digest), { force: true });
  }
}
