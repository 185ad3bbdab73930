/**
 * The normalized deployment manifest: what a Compose-style file means once its short forms are
 * expanded (environment list → map, durations → ms, sizes → bytes, port ranges → one binding per
 * port). Everything downstream (the canonical digest, the signed deployment document, the daemon's
 * planner, the privilege check) works on this form, so two spellings of one file deploy identically.
 * Keys added after the first release are optional and left out when unset, so a manifest that does
 * not use them keeps its digest and its containers' config hashes.
 */
/**
 * `networks`: the service joins the manifest's user-defined bridge networks listed in `networks`
 * (Compose's default when neither `network_mode` nor `networks` is written: the `default` network).
 * `service:NAME`: shares the network namespace of another service of the manifest.
 */
export type NetworkMode = 'host' | 'none' | 'bridge' | 'networks' | `service:${string}`;
export type RestartPolicy = 'no' | 'always' | 'on-failure' | 'unless-stopped';
export type UpdateStrategy = 'download-then-swap' | 'stop-then-start';
export type DependsCondition = 'service_started' | 'service_healthy' | 'service_completed_successfully';

export interface VolumeMount {
  /** A named volume declared under top-level `volumes`. */
  source: string;
  target: string;
  readOnly: boolean;
}

/** A path of the gateway mounted into the container (a privilege: see privileges.ts). */
export interface BindMount {
  /** Absolute path on the gateway. */
  source: string;
  target: string;
  readOnly: boolean;
  /** Create the source directory when missing (Compose: true for the short form, false for the long form). */
  createHostPath: boolean;
}

/** A secret the service mounts read-only at `/run/secrets/<target>` (manifests/secrets.ts). */
export interface SecretMount {
  /** Its name under the top-level `secrets`, as set with `berth secrets set`. */
  source: string;
  /** File name under /run/secrets. */
  target: string;
  uid: number;
  gid: number;
  /** Octal permission bits of the file (default 0o400). */
  mode: number;
}

export interface TmpfsMount {
  target: string;
  sizeBytes?: number;
  /** Octal permission bits of the mount's root, e.g. 0o1777. */
  mode?: number;
}

export interface DeviceMapping {
  /** The device node on the gateway, e.g. /dev/ttyUSB0. */
  source: string;
  target: string;
  /** cgroup permissions: some of r, w, m (default rwm). */
  permissions: string;
}

export interface PortBinding {
  /** Container port. */
  target: number;
  /** Host port; absent: the engine picks a free one. */
  published?: number;
  /** Host address to listen on; absent: every address. */
  hostIp?: string;
  protocol: 'tcp' | 'udp';
}

export interface ExposedPort {
  port: number;
  protocol: 'tcp' | 'udp';
}

export interface NetworkAttachment {
  aliases: string[];
}

export interface Logging {
  driver: 'json-file' | 'local' | 'journald' | 'none';
  maxSizeBytes?: number;
  maxFile?: number;
}

export interface Ulimit {
  soft: number;
  hard: number;
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
  /** Present exactly when networkMode is `networks`: manifest network name → attachment. */
  networks?: Record<string, NetworkAttachment>;
  restart: RestartPolicy;
  /** `restart: on-failure:N`. */
  restartMaxRetries?: number;
  volumes: VolumeMount[];
  binds?: BindMount[];
  tmpfs?: TmpfsMount[];
  healthcheck?: Healthcheck;
  dependsOn: Record<string, { condition: DependsCondition }>;
  memoryBytes?: number;
  memoryReservationBytes?: number;
  nanoCpus?: number;
  cpuset?: string;
  user?: string;
  workingDir?: string;
  labels: Record<string, string>;
  stopGracePeriodMs?: number;
  stopSignal?: string;
  devices?: DeviceMapping[];
  /** Supplementary groups, names (resolved in the image) or numbers. */
  groupAdd?: string[];
  /** Capability names without the CAP_ prefix, upper case (`ALL` allowed). */
  capAdd?: string[];
  capDrop?: string[];
  privileged?: true;
  sysctls?: Record<string, string>;
  ulimits?: Record<string, Ulimit>;
  shmSizeBytes?: number;
  pid?: 'host';
  /** `host`, `private`, `shareable`, `none`, or `service:NAME`. */
  ipc?: string;
  /** `key=value` (or a bare flag), as Docker reads them. */
  securityOpt?: string[];
  readOnly?: true;
  /** Berth runs an init (tini) as PID 1 unless `init: false`. */
  init?: false;
  hostname?: string;
  /** `host:ip` pairs, as Docker reads them. */
  extraHosts?: string[];
  dns?: string[];
  dnsSearch?: string[];
  ports?: PortBinding[];
  expose?: ExposedPort[];
  logging?: Logging;
  /** `os/arch[/variant]`: the platform picked from an image index. */
  platform?: string;
  secrets?: SecretMount[];
}

export interface Manifest {
  name: string;
  version: string;
  services: Record<string, Service>;
  volumes: Record<string, Record<string, never>>;
  /** User-defined bridge networks, created per release; present when a service joins one. */
  networks?: Record<string, { internal?: true }>;
  /** Declared secret names; their values come from the control plane, encrypted per device. */
  secrets?: Record<string, Record<string, never>>;
  update: { strategy: UpdateStrategy; healthTimeoutMs: number };
}

/** A manifest whose every image is `repository@sha256:…` (publish-time pinning). */
export type PinnedManifest = Manifest;
