import { createReadStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { EngineClient } from '../engine/client.js';
import { ByteReader, type ByteStream } from '../../common/delta/bytes.js';
import { openFileSource, type RandomAccessSource } from '../../common/delta/source.js';
import { nextEntry } from '../../common/delta/tar.js';
import { Digester, digestHex } from '../../common/digest.js';
import type { DownloadStore } from './store.js';

/** No copy of a delta's base could be had: neither the store nor the engine holds it (any more). */
export class NoBaseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoBaseError';
  }
}

export type BaseTar = RandomAccessSource & { close(): Promise<void> };

export interface BaseWanted {
  /** The base layer's diff_id (its tar's sha256) and its size, from the delta's header. */
  diffId: string;
  size: number;
  /** Its compressed blob, which the store may still hold from an earlier full download. */
  digest: string;
  /** An engine image holding the layer (its id = config digest), for `docker save`. */
  engineImage?: string;
}

/**
 * Writes `bytes` to `path` while hashing; the file stays only when the bytes are the wanted tar
 * (size and sha256). One chunk in memory at a time: each write is awaited.
 */
async function keepIfTar(bytes: ByteStream, path: string, want: BaseWanted, moved?: (bytes: number) => void): Promise<boolean> {
  const fh = await open(path, 'w', 0o600);
  const digester = new Digester();
  let size = 0;
  try {
    for await (const chunk of bytes) {
      // Every chunk is a fresh buffer outside the V8 heap: the pacer has them collected as they go.
      moved?.(chunk.length);
      size += chunk.length;
      if (size > want.size) break;
      digester.update(chunk);
      await fh.write(chunk);
    }
  } finally {
    await fh.close();
  }
  const ok = size === want.size && digester.digest() === want.diffId;
  if (!ok) await rm(path, { force: true });
  return ok;
}

async function temporary(path: string): Promise<BaseTar> {
  const src = await openFileSource(path);
  return { ...src, close: async () => { await src.close(); await rm(path, { force: true }); } };
}

/** The layer tar out of `docker save IMAGE`: the entry of the base's size whose sha256 is its diff_id. */
async function fromEngine(docker: EngineClient, image: string, want: BaseWanted, path: string, moved?: (bytes: number) => void): Promise<boolean> {
  let archive: NodeJS.ReadableStream;
  try {
    archive = await docker.getImage(image).get();
  } catch {
    return false;
  }
  const r = ByteReader.of(archive as AsyncIterable<Uint8Array>, `docker save of ${image}`, (m) => new NoBaseError(m));
  try {
    for (let e = await nextEntry(r); e; e = await nextEntry(r)) {
      const body = r.span(e.size, `entry ${e.path}`);
      // docker save's layer tar is byte for byte the layer (its sha256 is the config's diff_id).
      if (e.type === '0' && e.size === want.size && (await keepIfTar(body, path, want, moved))) return true;
      for await (const skipped of body) void skipped;
      if (e.padding > 0) await r.readExact(e.padding, 'tar padding');
    }
    return false;
  } finally {
    (archive as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
  }
}

/**
 * A base tar to apply a delta to, from the cheapest place that has it: the store's own copy of
 * the tar (a layer rebuilt earlier), the store's compressed blob (gunzipped into `tmpDir`), or the
 * engine (`docker save` of an image holding it, streamed; only the one layer is written). Every
 * copy is checked against the base's diff_id. Throws NoBaseError when none has it.
 */
export async function openBase(store: DownloadStore, docker: EngineClient, want: BaseWanted, tmpDir: string, moved?: (bytes: number) => void): Promise<BaseTar> {
  if ((await store.size(want.diffId)) === want.size) return openFileSource(store.blobPath(want.diffId));
  const path = join(tmpDir, `base-${digestHex(want.diffId)}.tar`);
  if (await store.has(want.digest)) {
    // node:zlib on first use, like common/delta/format.ts's checksum: a gateway without deltas never loads it
    const gunzip = createReadStream(store.blobPath(want.digest)).pipe(process.getBuiltinModule('node:zlib').createGunzip({ chunkSize: 256 << 10 }));
    if (await keepIfTar(gunzip, path, want, moved).catch(() => false)) return temporary(path);
    gunzip.destroy();
  }
  if (want.engineImage && (await fromEngine(docker, want.engineImage, want, path, moved).catch(() => false))) return temporary(path);
  throw new NoBaseError(`no copy of base layer ${want.diffId}: not in the store${want.engineImage ? `, not in the engine's image ${want.engineImage}` : ', and no engine image holds it'}`);
}
