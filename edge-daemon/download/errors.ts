/** Thrown before any byte is written: the missing images do not fit on one of the filesystems. */
export class DiskSpaceError extends Error {
  constructor(
    readonly needed: number,
    readonly free: number,
    where: string,
  ) {
    super(`not enough disk space on ${where}: ${needed} bytes needed (missing images plus margin), ${free} bytes free`);
    this.name = 'DiskSpaceError';
  }
}

/** A blob whose bytes did not hash to its digest twice in a row; it was discarded, never loaded. */
export class BlobVerificationError extends Error {
  constructor(
    readonly digest: string,
    readonly image: string,
    actual: string,
  ) {
    super(`blob ${digest} of image ${image} failed verification twice (got ${actual}); discarded, not loaded`);
    this.name = 'BlobVerificationError';
  }
}

/** The registry proxy does not have (any more) the image or one of its blobs. */
export class ImageUnavailableError extends Error {
  constructor(
    readonly image: string,
    what: string,
  ) {
    super(`image ${image} is not available from the registry proxy: ${what}`);
    this.name = 'ImageUnavailableError';
  }
}

/** An HTTP answer or transport failure worth another attempt (5xx, 429, cut connection, idle timeout). */
export class TransientError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransientError';
  }
}

/**
 * Makes sure an error names the image it concerns: typed errors already do; anything else (a
 * malformed manifest, ENOSPC, an engine error) gets the image prefixed, the original as cause.
 */
export function namingImage(image: string, err: unknown): unknown {
  if (err instanceof DiskSpaceError || err instanceof BlobVerificationError || err instanceof ImageUnavailableError) return err;
  if (!(err instanceof Error)) return new Error(`image ${image}: ${String(err)}`);
  if (err.name === 'AbortError' || err.message.includes(image)) return err;
  return new Error(`image ${image}: ${err.message}`, { cause: err });
}
