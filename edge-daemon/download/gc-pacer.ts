import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Why: every socket read and every 1 MiB file read allocates a fresh Buffer outside the V8 heap;
 * it is freed only when the small JS object holding it is collected. V8 schedules collections by
 * its own heap's growth (plus a 64 MB allowance for such external memory), so streaming 200 MB
 * leaves tens of MB of dead buffers resident between collections, and glibc keeps much of it
 * after. A young-generation collection every MiB moved frees them while they are few: measured
 * on a 200 MiB node:http → file stream, +33 MiB resident without, +15 with one every 2 MiB, +11
 * every MiB, +9 every 512 KiB; each costs well under a millisecond (the young generation holds
 * little else), so about 0.1 s of CPU per 200 MB.
 */

/** A young-generation collection, or undefined where the runtime offers none (then: no pacing). */
export type MinorGc = () => void;

/**
 * The engine's `gc` function. `--expose-gc` set at run time only installs `gc` in contexts created
 * afterwards, so it is taken from a fresh one and the main context's globals stay untouched.
 */
export function minorGc(): MinorGc | undefined {
  try {
    let gc = (globalThis as { gc?: unknown }).gc;
    if (typeof gc !== 'function') {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('typeof gc === "function" ? gc : undefined');
    }
    if (typeof gc !== 'function') return undefined;
    const collect = gc as (opts?: { type: 'minor' | 'major' }) => void;
    return () => collect({ type: 'minor' });
  } catch {
    return undefined;
  }
}

/** Bytes moved between two collections: small enough to bound resident memory, big enough to cost nothing. */
export const GC_EVERY_BYTES = 1024 * 1024;

/** Counts bytes a stream moved and collects the young generation every `everyBytes`. */
export class GcPacer {
  private since = 0;

  constructor(
    private readonly gc: MinorGc | undefined,
    private readonly everyBytes = GC_EVERY_BYTES,
  ) {}

  moved(bytes: number): void {
    if (!this.gc) return;
    this.since += bytes;
    if (this.since < this.everyBytes) return;
    this.since = 0;
    this.gc();
  }
}
