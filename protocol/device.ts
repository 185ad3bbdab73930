import { z } from 'zod';
import { empty, json, route } from './route.js';

/**
 * The control channel: what an edge daemon calls. Enrollment is anonymous (the signed challenge is
 * the proof); the rest carries the device token and acts on the caller's own device only.
 */

export const ENROLL_PROOF_CONTEXT = 'berth-enroll-v1';
/** With an encryption key: the proof covers it too, so nobody can put their key on a device's name. */
export const ENROLL_PROOF_CONTEXT_V2 = 'berth-enroll-v2';

/** The exact bytes a device signs to prove it holds the key the manufacturer recorded (and, v2, owns its encryption key). */
export function enrollProofBytes(serial: string, challenge: string, encryptionKey?: string): string {
  if (encryptionKey === undefined) return `${ENROLL_PROOF_CONTEXT}\n${serial}\n${challenge}`;
  return `${ENROLL_PROOF_CONTEXT_V2}\n${serial}\n${challenge}\nx25519:${encryptionKey}`;
}

export const serialSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'serial: 1-128 of A-Z a-z 0-9 . _ : -');

export const enrollChallengeRequest = z.object({ serial: serialSchema });
export const enrollChallengeResponse = z.object({ challenge: z.string(), expiresAt: z.string() });

export const enrollRequest = z.object({
  serial: serialSchema,
  challenge: z.string().min(16).max(256),
  /** base64url Ed25519 signature over enrollProofBytes(serial, challenge). */
  signature: z.string().regex(/^[A-Za-z0-9_-]+$/),
  /**
   * The device's X25519 public key (base64url of its 32 raw bytes) that secrets are encrypted to;
   * sent at enrollment and every renewal (a device enrolled before secrets registers it at its next
   * renewal). When present the signature is over the v2 proof, which covers it.
   */
  encryptionKey: z.string().regex(/^[A-Za-z0-9_-]{43}$/, '43 base64url characters (32 raw X25519 bytes)').optional(),
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
  bytes: z.object({
    done: z.number().nonnegative(),
    total: z.number().nonnegative(),
    /** With layer deltas: what the missing layers weigh in full, to read `done` against ("1.6 MB of 49 MB (delta)"). */
    full: z.number().nonnegative().optional(),
    delta: z.boolean().optional(),
  }),
  services: z.record(z.string(), serviceReport),
  /** os/arch[/variant] the gateway picks from multi-platform images (campaigns prepare deltas for it). */
  platform: z.string().regex(/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/, 'os/arch[/variant], e.g. linux/arm64').max(64).optional(),
  /** Why the last document or release failed (refused signature, unhealthy service + log tail, disk full…). */
  error: z.string().max(8192).optional(),
  at: z.string(),
});
export type DeviceReport = z.infer<typeof deviceReport>;
export type ServiceReport = z.infer<typeof serviceReport>;

export const desiredQuery = z.object({ wait: z.coerce.number().int().min(0).max(3600).optional() });
export const desiredAnswer = z.object({ document: z.string().meta({ description: 'the deployment document, a compact JWS' }) });
export const reportAnswer = z.object({ accepted: z.boolean().meta({ description: 'false when the report is not newer than the last one' }) });

export const deviceRoutes = {
  challenge: route({
    method: 'post',
    path: '/v1/enroll/challenge',
    summary: 'A fresh single-use challenge for a device to sign',
    auth: 'none',
    body: enrollChallengeRequest,
    responses: { 200: json(enrollChallengeResponse) },
  }),
  enroll: route({
    method: 'post',
    path: '/v1/enroll',
    summary: 'Enroll (or renew) with a signature over the challenge by the key the manufacturer recorded',
    auth: 'none',
    body: enrollRequest,
    responses: { 200: json(enrollResponse, 'enrolled: the device token, the proxy and the keys to pin') },
  }),
  desired: route({
    method: 'get',
    path: '/v1/device/desired',
    summary: 'The signed deployment document (ETag = "sequence"; If-None-Match → 304; ?wait=S long-polls)',
    auth: 'device',
    query: desiredQuery,
    responses: {
      200: json(desiredAnswer, 'the document, with its ETag'),
      204: empty('nothing assigned to this device yet'),
      304: empty('unchanged since the ETag sent in If-None-Match'),
    },
  }),
  pullToken: route({
    method: 'post',
    path: '/v1/device/pull-token',
    summary: 'A registry-proxy token covering exactly the images of the desired and previous release',
    auth: 'device',
    responses: { 200: json(pullTokenResponse) },
  }),
  report: route({
    method: 'post',
    path: '/v1/device/report',
    summary: 'Report reported state; older or equal sequences are ignored',
    auth: 'device',
    body: deviceReport,
    responses: { 202: json(reportAnswer, 'recorded (or ignored as stale)') },
  }),
};
