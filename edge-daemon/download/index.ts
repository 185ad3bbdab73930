/**
 * The edge daemon's download channel: fetches pinned images from the registry proxy (only what
 * neither the engine nor the store has, resumable, verified), checks disk first, reports progress,
 * hands the images to the local engine and prunes what no release needs. See README.md.
 */
export { createImageFetcher, type ImageFetcher, type ImageFetcherOptions } from './fetcher.js';
export type { DownloadProgress } from './progress.js';
export { BlobVerificationError, DiskSpaceError, ImageUnavailableError } from './errors.js';
