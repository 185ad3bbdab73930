import type { KeyObject } from 'node:crypto';
import type { Logger } from './gateway-log.js';
import type { ReleasePhase } from '../protocol/device.js';
import type { FetcherFactory } from './images.js';

/** What `startEdgeDaemon` takes and what the running daemon answers. */

export interface EdgeDaemonOptions {
  controlPlane: string;
  stateDir: string;
  serial: string;
  /** Path of the device's Ed25519 private key (PKCS#8 PEM), or the key itself. */
  key: string | KeyObject;
  /** unix:///path/docker.sock or tcp://host:port; default unix:///var/run/docker.sock. */
  dockerHost?: string;
  /** Path of a PEM or raw Ed25519 public key that overrides the JWKS pinned at enrollment. */
  trustKey?: string;
  /** Overrides the registry proxy URL the control plane gave at enrollment. */
  registryProxy?: string;
  /** Aborts the start while it still enrolls; afterwards use close(). */
  signal?: AbortSignal;
  /** PEM file of the fleet's CA, trusted besides the public roots for https: control plane and proxy URLs. */
  caFile?: string;
  /** Device client certificate and key (PEM) presented in TLS handshakes, for a control plane with `--device-client-ca`. */
  tlsClientCert?: string;
  tlsClientKey?: string;
  /** Path of the gateway's privilege ceiling (`KEY=VALUE[,VALUE…]` per line); no document asks beyond it. */
  allow?: string;
  /** tmpfs root of secret files (default /run/berth): `<dir>/<device>/secrets/…`; refused unless tmpfs. */
  secretsDir?: string;
  /** Development and tests only: accept a secrets dir that is not tmpfs (the files then reach a disk). */
  secretsDirAnyFs?: boolean;
  log?: Logger;
  /** The download channel; default the one in `download/`, loaded on first use. */
  fetcherFactory?: FetcherFactory;
  longPollSeconds?: number;
  heartbeatMs?: number;
  reportMinIntervalMs?: number;
  /** How often the running release is checked against the engine (drift, engine restarts, retries). */
  reconcileIntervalMs?: number;
  /** Without a healthcheck, how long a started container must run without restarting. */
  stableMs?: number;
  healthPollMs?: number;
  backoffCapMs?: number;
}

export interface DaemonStatus {
  deviceId: string;
  phase: ReleasePhase;
  running: string | null;
  currentSequence: number | null;
  lastSequence: number | null;
  /** Sequence of the last document received (applied, ignored or refused); null before any. */
  seenSequence: number | null;
  /** How many documents have been received and judged (tests wait on this). */
  documentsSeen: number;
  error?: string;
  inflight: boolean;
  /** True while the daemon applies, restores or judges something (tests wait for false). */
  busy: boolean;
  online: boolean;
  queuedReports: number;
}

export interface EdgeDaemon {
  deviceId: string;
  status(): DaemonStatus;
  close(): Promise<void>;
}


