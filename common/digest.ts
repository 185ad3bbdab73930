import { createHash, type Hash } from 'node:crypto';

/** An OCI content digest as Berth accepts it: sha256 only, lowercase hex. */
export const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function isDigest(value: string): boolean {
  return DIGEST_RE.test(value);
}

export function sha256Digest(data: Uint8Array | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/** The hex part of a digest, safe to use as a file name (validated, so no path traversal). */
export function digestHex(digest: string): string {
  if (!isDigest(digest)) throw new Error(`invalid digest ${JSON.stringify(digest)}: expected sha256:<64 hex>`);
  return digest.slice('sha256:'.length);
}

export class DigestMismatchError extends Error {
  constructor(readonly expected: string, readonly actual: string, where: string) {
    super(`digest mismatch for ${where}: expected ${expected}, got ${actual}`);
    this.name = 'DigestMismatchError';
  }
}

/** Streaming sha256 that can be seeded with the bytes already on disk (resume). */
export class Digester {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;
  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
  }
  digest(): string {
    return 'sha256:' + this.hash.digest('hex');
  }
}
