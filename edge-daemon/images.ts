import type Dockerode from 'dockerode';
import type { Logger } from '../common/log.js';

/**
 * The download channel as the rest of the daemon sees it (implemented in `download/`). Kept here as
 * types only, so the reconcile code and the tests depend on the contract, not on the implementation,
 * and `download/` can name the contract it fulfils without importing its own loader back.
 */
export interface FetchProgress {
  done: number;
  total: number;
  images: Record<string, { done: number; total: number }>;
}

export interface ImageFetcher {
  /** Every image present in the engine by digest when this resolves; throws DiskSpaceError (nothing written), BlobVerificationError, ImageUnavailableError. */
  ensureImages(images: string[], opts: { onProgress?: (p: FetchProgress) => void; signal?: AbortSignal }): Promise<Record<string, { imageId: string }>>;
  missingBytes(images: string[]): Promise<number>;
  prune(keep: string[]): Promise<void>;
  close(): Promise<void>;
}

export interface FetcherOptions {
  stateDir: string;
  docker: Dockerode;
  deviceId: string;
  registryProxy: string;
  pullToken: () => Promise<string>;
  log: Logger;
  concurrency?: number;
  diskMarginBytes?: number;
}

export type FetcherFactory = (opts: FetcherOptions) => ImageFetcher;
