/** Pure rules for resuming a blob download from the bytes already in its partial file. */

export type ResumeStart =
  | { kind: 'verify' }
  | { kind: 'fetch'; offset: number; headers: Record<string, string> };

/**
 * What to ask for given `partialSize` bytes on disk. A partial as long as the blob (a crash between
 * the last write and the rename) is verified as it is; a longer one can only be wrong and fails
 * verification. The proxy's ETag is the quoted digest, so If-Range makes a server that does not
 * hold these exact bytes answer 200 with the whole blob instead of a range of something else.
 */
export function resumeStart(partialSize: number, size: number, digest: string): ResumeStart {
  if (partialSize >= size && size > 0) return { kind: 'verify' };
  if (partialSize <= 0) return { kind: 'fetch', offset: 0, headers: {} };
  return { kind: 'fetch', offset: partialSize, headers: { Range: `bytes=${partialSize}-`, 'If-Range': `"${digest}"` } };
}

export type BodyPlan =
  | { kind: 'append'; offset: number }
  | { kind: 'restart' }
  | { kind: 'discard' }
  | { kind: 'unavailable' }
  | { kind: 'unauthorized' }
  | { kind: 'fail'; transient: boolean; reason: string };

/** How to use a blob response, given the offset we asked from and the blob's size. */
export function bodyPlan(status: number, contentRange: string | null, offset: number, size: number): BodyPlan {
  if (status === 200) return { kind: 'restart' };
  if (status === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange ?? '');
    if (!m) return { kind: 'fail', transient: true, reason: `206 without a usable Content-Range (${contentRange ?? 'none'})` };
    const start = Number(m[1]);
    const total = m[3] === '*' ? size : Number(m[3]);
    if (total !== size) return { kind: 'fail', transient: false, reason: `blob is ${total} bytes on the proxy, the manifest says ${size}` };
    // A range that does not start where our file ends cannot be appended; start over cleanly.
    if (start !== offset || offset === 0) return { kind: 'discard' };
    return { kind: 'append', offset };
  }
  // Our range lies beyond what the proxy has: the partial file is not a prefix of this blob.
  if (status === 416) return { kind: 'discard' };
  if (status === 404) return { kind: 'unavailable' };
  if (status === 401) return { kind: 'unauthorized' };
  const transient = status >= 500 || status === 429 || status === 408;
  return { kind: 'fail', transient, reason: `HTTP ${status}` };
}
