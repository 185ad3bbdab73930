import { z } from 'zod';
import { DIGEST_RE } from '../common/digest.js';

/**
 * The wire contract between the three services. Every service validates what it receives with
 * these schemas, so a field means the same thing on both ends of a connection.
 *
 * Control channel (edge-daemon → control-plane, Bearer device token unless noted):
 *   POST /v1/enroll/challenge  {serial}                         → EnrollChallenge        (no auth)
 *   POST /v1/enroll            EnrollRequest                    → EnrollResponse         (no auth; the proof is the auth)
 *   GET  /v1/device/desired[?wait=S]  If-None-Match: "<etag>"   → 200 {document: JWS} + ETag | 204 none assigned | 304
 *   POST /v1/device/pull-token                                  → PullTokenResponse
 *   POST /v1/device/report     DeviceReport                     → 202 {accepted: boolean}
 * Registry token exchange (Docker token auth spec, for docker/skopeo as operators):
 *   GET  /v1/registry/token?service=berth-registry-proxy&scope=repository:ALIAS/REPO:pull
 *        Authorization: Basic (any user, operator token as password) or Bearer (operator/device token)
 *        → {token, access_token, expires_in, issued_at}
 * Download channel (edge-daemon → registry-proxy): OCI Distribution read API, Bearer pull token.
 *   GET  /berth/v1/upstreams → {upstreams: [{alias, host}]}   (no auth; lets publishers map references)
 */

export const ENROLL_PROOF_CONTEXT = 'berth-enroll-v1';

/** The exact bytes a device signs to prove it holds the key the manufacturer recorded. */
export function enrollProofBytes(serial: string, challenge: string): string {
  return `${ENROLL_PROOF_CONTEXT}\n${serial}\n${challenge}`;
}

export const serialSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'serial: 1-128 of A-Z a-z 0-9 . _ : -');

export const enrollChallengeRequest = z.object({ serial: serialSchema });
export const enrollChallengeResponse = z.object({ challenge: z.string(), expiresAt: z.string() });

export const enrollRequest = z.object({
  serial: serialSchema,
  challenge: z.string().min(16).max(256),
  /** base64url Ed25519 signature over enrollProofBytes(serial, challenge). */
  signature: z.string().regex(/^[A-Za-z0-9_-]+$/),
});

export const jwksSchema = z.object({ keys: z.array(z.record(z.string(), z.unknown())) });

export const enrollResponse = z.object({
  deviceId: z.string(),
  token: z.string(),
  tokenExpiresAt: z.string(),
  /** URL of the registry proxy this device downloads from; null when none is configured. */
  registryProxy: z.string().nullable(),
  /** Control plane's deployment-signing keys, pinned by the device at enrollment. */
  jwks: jwksSchema,
});

export const pullTokenResponse = z.object({ token: z.string(), expiresAt: z.string(), registryProxy: z.string().nullable() });

/** JWT types and audiences: a token of one kind is never accepted where another is expected. */
export const TOKEN = {
  issuer: 'berth-control-plane',
  deviceTyp: 'berth-device+jwt',
  deviceAudience: 'berth-control-plane',
  pullTyp: 'berth-pull+jwt',
  pullAudience: 'berth-registry-proxy',
} as const;

/**
 * A pull token's `access` claim (Docker token spec shape, plus `digests`): the repositories on the
 * proxy and, for devices, the manifest digests of its desired state. The proxy allows a blob when
 * a manifest it allows references it. No `digests` means any content of the repository (operators).
 */
export const pullAccess = z.array(
  z.object({
    type: z.literal('repository'),
    name: z.string(),
    actions: z.array(z.string()),
    digests: z.array(z.string().regex(DIGEST_RE)).optional(),
  }),
);
export type PullAccess = z.infer<typeof pullAccess>;

export const releasePhases = ['idle', 'downloading', 'downloaded', 'applying', 'running', 'rolled-back', 'failed'] as const;
export type ReleasePhase = (typeof releasePhases)[number];

export const serviceReport = z.object({
  image: z.string(),
  imageId: z.string().optional(),
  containerId: z.string().optional(),
  status: z.enum(['created', 'running', 'restarting', 'exited', 'paused', 'dead', 'missing']),
  health: z.enum(['none', 'starting', 'healthy', 'unhealthy']),
  restarts: z.number().int().nonnegative(),
  exitCode: z.number().int().optional(),
  lastError: z.string().max(4096).optional(),
});

export const deviceReport = z.object({
  /** Per-device, strictly increasing across daemon restarts; older or equal ones are ignored. */
  sequence: z.number().int().nonnegative(),
  /** Sequence of the deployment document the phase refers to (null before any). */
  desiredSequence: z.number().int().nonnegative().nullable(),
  /** name@version the device is running now (after a rollback, the previous one). */
  running: z.string().nullable(),
  phase: z.enum(releasePhases),
  bytes: z.object({ done: z.number().nonnegative(), total: z.number().nonnegative() }),
  services: z.record(z.string(), serviceReport),
  /** Why the last document or release failed (refused signature, unhealthy service + log tail, disk full…). */
  error: z.string().max(8192).optional(),
  at: z.string(),
});
export type DeviceReport = z.infer<typeof deviceReport>;
export type ServiceReport = z.infer<typeof serviceReport>;
