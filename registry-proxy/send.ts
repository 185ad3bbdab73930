import { open, type FileHandle } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { drained, READ_CHUNK, type BlobPlan } from '../common/blob-http.js';
import type { BlobFetch } from './fetcher.js';

async function openEither(a: string, b: string): Promise<FileHandle> {
  try {
    return await open(a, 'r');
  } catch {
    // The fetch finished and renamed its partial file into the cache between two steps.
    return await open(b, 'r');
  }
}

const HOLD_SMALL_BYTES = 1 << 20;

export type TailOutcome = { sent: number; failedBeforeHeaders?: Error };

/**
 * Serves a planned range of a blob that is still arriving from upstream: bytes go out as soon as
 * they are on disk. The last byte is held back until the whole blob verified, so a client never
 * receives a complete body of unverified bytes; if verification fails it gets a cut connection
 * (or, when nothing was sent yet, the caller answers with an error).
 */
export async function sendWhileFetching(res: ServerResponse, plan: BlobPlan, f: BlobFetch, chunkSize: () => number = () => READ_CHUNK): Promise<TailOutcome> {
  if (!plan.body) {
    res.writeHead(plan.status, plan.headers);
    res.end();
    return { sent: 0 };
  }
  const size = f.size as number;
  const { start, end } = plan.body;
  let fh: FileHandle;
  try {
    fh = await openEither(f.partialPath, f.blobPath);
  } catch (err) {
    return { sent: 0, failedBeforeHeaders: err as Error };
  }
  let pos = start;
  let headersSent = false;
  try {
    while (pos <= end && !res.destroyed) {
      if (f.error) {
        if (!headersSent) return { sent: pos - start, failedBeforeHeaders: f.error };
        res.destroy(f.error);
        break;
      }
      // Small blobs (configs, tiny layers) arrive in moments: wait for the verdict, so a bad
      // upstream gets the client a clean error instead of a cut body.
      if (!f.verified && size <= HOLD_SMALL_BYTES) {
        await f.changed();
        continue;
      }
      const limit = f.verified ? size : Math.min(f.arrived, size - 1);
      const avail = Math.min(limit, end + 1) - pos;
      if (avail <= 0) {
        await f.changed();
        continue;
      }
      // A fresh buffer per write: the socket may still hold the previous one.
      const buf = Buffer.allocUnsafeSlow(Math.min(avail, chunkSize()));
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) {
        await f.changed();
        continue;
      }
      if (!headersSent) {
        res.writeHead(plan.status, plan.headers);
        headersSent = true;
      }
      pos += bytesRead;
      if (!res.write(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead))) await drained(res);
    }
    if (!res.destroyed && pos > end) res.end();
  } catch (err) {
    // Disk trouble mid-answer: before the headers the caller can still answer with an error.
    if (!headersSent) return { sent: 0, failedBeforeHeaders: err as Error };
    res.destroy(err as Error);
  } finally {
    await fh.close().catch(() => undefined);
  }
  return { sent: pos - start };
}
