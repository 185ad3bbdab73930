import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../common/atomic-file.js';
import { ByteReader } from '../../common/delta/bytes.js';
import { nextEntry, TarFormatError } from '../../common/delta/tar.js';
import { digestHex } from '../../common/digest.js';
import type { Logger } from '../../common/log.js';
import type { LayerRef } from './cache.js';
import type { ProxyParts } from './images.js';
import type { DeltaJobs } from './jobs.js';
import { layerTar } from './layer-tar.js';

const MEMO_LAYERS = 64;

/**
 * The file paths (directories left out) of layers, to pick the base that shares most of them with a target. Listed
 * once per diff_id (a walk of the tar, contents skipped) and kept at
 * `<cache-dir>/deltas/paths/<diff_id hex>.json`.
 */
export class LayerPaths {
  private readonly dir: string;
  private readonly memo = new Map<string, Set<string>>();

  constructor(cacheDir: string, private readonly parts: ProxyParts, private readonly jobs: DeltaJobs) {
    this.dir = join(cacheDir, 'deltas', 'paths');
  }

  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
  }

  /** The layer's paths when listed already (memory or disk); undefined otherwise. */
  async known(diffId: string): Promise<Set<string> | undefined> {
    const hit = this.memo.get(diffId);
    if (hit) return hit;
    try {
      const paths = new Set(JSON.parse(await readFile(join(this.dir, `${digestHex(diffId)}.json`), 'utf8')) as string[]);
      this.remember(diffId, paths);
      return paths;
    } catch {
      return undefined;
    }
  }

  ensure(layer: LayerRef, log: Logger): Promise<Set<string>> {
    return this.jobs.run(`paths:${layer.diffId}`, async () => {
      const had = await this.known(layer.diffId);
      if (had) return had;
      const paths = new Set<string>();
      try {
        await this.list(layer, paths, log);
      } catch (err) {
        // Not retried at once: an empty set makes this layer nobody's best base for a while.
        log.warn({ layer: layer.digest, err: (err as Error).message }, 'cannot list the paths of a layer');
        this.remember(layer.diffId, new Set());
        throw err;
      }
      await writeFileAtomic(join(this.dir, `${digestHex(layer.diffId)}.json`), JSON.stringify([...paths]));
      this.remember(layer.diffId, paths);
      return paths;
    });
  }

  private async list(layer: LayerRef, paths: Set<string>, log: Logger): Promise<void> {
    const blob = await this.parts.blob(layer.name, layer.digest, log);
    try {
      const r = ByteReader.of(layerTar(blob.path, layer.diffId, `layer ${layer.digest}`), `layer ${layer.digest}`, (m) => new TarFormatError(m));
      for (let e = await nextEntry(r); e; e = await nextEntry(r)) {
        // Directories are in nearly every layer; only what they hold tells layers apart.
        if (e.type !== '5') paths.add(e.path);
        for await (const _ of r.span(e.size + e.padding, `content of ${e.path}`)) void _;
      }
      // The digest check runs when the stream ends.
      for await (const _ of r.rest()) void _;
    } finally {
      blob.release();
    }
  }

  private remember(diffId: string, paths: Set<string>): void {
    if (this.memo.size >= MEMO_LAYERS) this.memo.delete(this.memo.keys().next().value as string);
    this.memo.set(diffId, paths);
  }
}

/** How many of `a`'s paths `b` has too. */
export function overlap(a: Set<string>, b: Set<string>): number {
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  let n = 0;
  for (const p of small) if (large.has(p)) n++;
  return n;
}
