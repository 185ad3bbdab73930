export interface DownloadProgress {
  done: number;
  total: number;
  images: Record<string, { done: number; total: number }>;
}

/**
 * Bytes on disk per blob, summed per image and overall. Each blob counts towards one image (the
 * first that needs it), so a shared layer is not counted twice. Emissions are throttled to one per
 * `minIntervalMs`; `flush()` emits the final state regardless.
 */
export class ProgressTracker {
  private readonly blobs = new Map<string, { image: string; size: number; done: number }>();
  private readonly totals = new Map<string, number>();
  private last = -Infinity;

  constructor(
    private readonly emit: ((p: DownloadProgress) => void) | undefined,
    private readonly minIntervalMs = 500,
    private readonly now: () => number = Date.now,
  ) {}

  addImage(image: string): void {
    if (!this.totals.has(image)) this.totals.set(image, 0);
  }

  addBlob(image: string, digest: string, size: number): void {
    this.addImage(image);
    if (this.blobs.has(digest)) return;
    this.blobs.set(digest, { image, size, done: 0 });
    this.totals.set(image, (this.totals.get(image) ?? 0) + size);
  }

  /** Bytes of `digest` on disk now (may go down when a download starts over). */
  set(digest: string, done: number): void {
    const b = this.blobs.get(digest);
    if (!b) return;
    b.done = Math.min(Math.max(0, done), b.size);
    const t = this.now();
    if (t - this.last >= this.minIntervalMs) {
      this.last = t;
      this.emit?.(this.snapshot());
    }
  }

  flush(): void {
    this.last = this.now();
    this.emit?.(this.snapshot());
  }

  snapshot(): DownloadProgress {
    const images: DownloadProgress['images'] = {};
    for (const [image, total] of this.totals) images[image] = { done: 0, total };
    for (const b of this.blobs.values()) images[b.image].done += b.done;
    let done = 0;
    let total = 0;
    for (const v of Object.values(images)) {
      done += v.done;
      total += v.total;
    }
    return { done, total, images };
  }
}
