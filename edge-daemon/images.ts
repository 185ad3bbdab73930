import type { HttpsTrust } from '../common/tls-trust.js';
import type { EngineClient } from './engine/client.js';
import type { Logger } from './gateway-log.js';

/**
 * The download channel as the rest of the daemon sees it (implemented in `download/`). Kept here as
 * types only, so the reconcile code and the tests depend on the contract, not on the implementation,
 * and `download/` can name the contract it fulfils without importing its own loader back.
 */
export interface FetchProgress {
  done: number;
  total: number;
  images: Record<string, { done: number; total: number }>;
  /** With deltas: what the missing layers weigh in full (`done` of `full` is what the link saved). */
  full?: number;
  delta?: boolean;
}

/** Per image, what the delta path did: layers rebuilt, and each layer it gave up on (fetched in full) and why. */
export interface DeltaOutcome {
  rebuilt: number;
  fallbacks: { layer: string; reason: 'no-base' | 'bad-digest' | 'apply-error' | 'unavailable' | 'full'; detail: string }[];
}

export interface ImageFetcher {
  /** Every image present in the engine by digest when this resolves; throws DiskSpaceError (nothing written), BlobVerificationError, ImageUnavailableError. */
  ensureImages(
    images: string[],
    opts: { onProgress?: (p: FetchProgress) => void; signal?: AbortSignal; /** Images the gateway runs: bases for layer deltas. */ have?: string[] },
  ): Promise<Record<string, { imageId: string; delta?: DeltaOutcome }>>;
  missingBytes(images: string[]): Promise<number>;
  prune(keep: string[]): Promise<void>;
  close(): Promise<void>;
}

export interface FetcherOptions {
  stateDir: string;
  docker: EngineClient;
  deviceId: string;
  registryProxy: string;
  pullToken: () => Promise<string>;
  log: Logger;
  /** The fleet's CA for an https: proxy (`--ca-file`). */
  trust?: HttpsTrust;
  concurrency?: number;
  diskMarginBytes?: number;
}

export type FetcherFactory = (opts: FetcherOptions) => ImageFetcher;
