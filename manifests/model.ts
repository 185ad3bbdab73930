/**
 * The normalized deployment manifest: what a Compose-style file means once its short forms are
 * expanded (environment list → map, durations → ms, memory → bytes). Everything downstream (the
 * canonical digest, the signed deployment document, the daemon's planner) works on this form, so
 * two spellings of the same file deploy identically.
 */
export type NetworkMode = 'host' | 'none';
export type RestartPolicy = 'no' | 'always' | 'on-failure' | 'unless-stopped';
export type UpdateStrategy = 'download-then-swap' | 'stop-then-start';
export type DependsCondition = 'service_started' | 'service_healthy' | 'service_completed_successfully';

export interface VolumeMount {
  /** A named volume declared under top-level `volumes`. Bind mounts are not supported. */
  source: string;
  target: string;
  readOnly: boolean;
}

export interface Healthcheck {
  /** Docker's form: ["CMD", ...] or ["CMD-SHELL", "..."]; ["NONE"] disables the image's own check. */
  test: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

export interface Service {
  /** As written (tag or digest) in a source manifest; always `repo@sha256:…` once pinned. */
  image: string;
  command?: string[];
  entrypoint?: string[];
  environment: Record<string, string>;
  networkMode: NetworkMode;
  restart: RestartPolicy;
  volumes: VolumeMount[];
  healthcheck?: Healthcheck;
  dependsOn: Record<string, { condition: DependsCondition }>;
  memoryBytes?: number;
  nanoCpus?: number;
  user?: string;
  workingDir?: string;
  labels: Record<string, string>;
  stopGracePeriodMs?: number;
}

export interface Manifest {
  name: string;
  version: string;
  services: Record<string, Service>;
  volumes: Record<string, Record<string, never>>;
  update: { strategy: UpdateStrategy; healthTimeoutMs: number };
}

/** A manifest whose every image is `repository@sha256:…` (publish-time pinning). */
export type PinnedManifest = Manifest;
