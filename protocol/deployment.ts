import type { JWK } from 'jose';
import { createPublicKey, sign, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { canonicalDigest, canonicalJson } from '../manifests/canonical.js';
import type { PinnedManifest } from '../manifests/model.js';
import { pinnedManifestSchema } from '../manifests/schema.js';
import { secretsUsed } from '../manifests/secrets.js';
import { JoseRefused, verifyCompactEdDSA } from './jose-open.js';

/** JWS `typ` of a deployment document; verification refuses any other so a token can't pose as one. */
export const DEPLOYMENT_TYP = 'berth-deployment+jws';

/** What a device receives: the pinned manifest it must run, for it alone, ordered and expiring. */
export interface DeploymentDocument {
  /** Device id the document is for. */
  device: string;
  /** Strictly increasing per device; a device refuses anything not above what it last applied. */
  sequence: number;
  /** Issued-at and expiry, seconds since the epoch. */
  iat: number;
  exp: number;
  manifest: { name: string; version: string; digest: string };
  spec: PinnedManifest;
  campaign?: string;
  /** Each secret the spec's services mount: its version and its value as a JWE for this device alone (secret-box.ts). */
  secrets?: Record<string, DocumentSecret>;
}

export interface DocumentSecret {
  ref: string;
  jwe: string;
}

const documentShape = z.object({
  device: z.string().min(1),
  sequence: z.number().int().nonnegative(),
  iat: z.number().int(),
  exp: z.number().int(),
  manifest: z.object({ name: z.string(), version: z.string(), digest: z.string() }),
  // The normalized manifest with every image pinned: the signature then covers every byte the device runs.
  spec: pinnedManifestSchema,
  campaign: z.string().optional(),
  secrets: z.record(z.string(), z.object({ ref: z.string().min(1), jwe: z.string().min(1) })).optional(),
});

/**
 * `beyond-ceiling`: valid, but asks for privileges the gateway's own `--allow` file does not grant.
 * `secret-refused`: a secret does not decrypt with this device's key (addressed to another device or
 * key), or the gateway has no tmpfs for it.
 */
export type RejectReason = 'malformed' | 'bad-signature' | 'unknown-key' | 'wrong-device' | 'expired' | 'replayed' | 'beyond-ceiling' | 'secret-refused';

export class DeploymentRejected extends Error {
  constructor(readonly reason: RejectReason, detail: string) {
    super(`deployment document rejected (${reason}): ${detail}`);
    this.name = 'DeploymentRejected';
  }
}

export async function signDeployment(doc: DeploymentDocument, key: { privateKey: KeyObject; kid: string }): Promise<string> {
  return signDeploymentPayload(canonicalJson(doc), key);
}

/**
 * The compact JWS of a document's canonical JSON (`payload`), signed with node:crypto on the
 * calling thread. The bytes are those jose's CompactSign made (the header as it serialized it, and
 * Ed25519 signatures are deterministic; test/unit/deployment.test.ts holds the two equal), but
 * jose 6 signs through WebCrypto: a threadpool job and its wake-up for each document, about twice
 * the CPU of the signature itself, a third of it system time (issue 17: a campaign's wave answers
 * every woken long poll with a freshly signed document).
 */
export function signDeploymentPayload(payload: string, key: { privateKey: KeyObject; kid: string }): string {
  // jose refused any other key for EdDSA; node:crypto would sign with it under the wrong name.
  if (key.privateKey.type !== 'private' || key.privateKey.asymmetricKeyType !== 'ed25519') throw new TypeError('a deployment document is signed with an Ed25519 private key');
  const input = `${Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: DEPLOYMENT_TYP, kid: key.kid })).toString('base64url')}.${Buffer.from(payload).toString('base64url')}`;
  return `${input}.${sign(null, Buffer.from(input), key.privateKey).toString('base64url')}`;
}

/**
 * canonicalJson(doc) from everything but the spec and the spec's own canonical JSON (`specJson`),
 * so a spec shared by many documents is serialized once, not once per device: canonical JSON sorts
 * members by name and every other member of a document sorts before "spec".
 */
export function deploymentPayload(doc: Omit<DeploymentDocument, 'spec'>, specJson: string): string {
  const rest = canonicalJson(doc);
  return `${rest.slice(0, -1)},"spec":${specJson}}`;
}

export interface VerifyOptions {
  /** Trusted keys by kid: a JWKS from the control plane (as pinned at enrollment) or KeyObjects. */
  keys: { keys: JWK[] } | Record<string, KeyObject>;
  device: string;
  /** The sequence of the last applied document; the new one must be strictly above it. */
  lastSequence?: number;
  /** Seconds since the epoch; defaults to now. */
  now?: number;
}

function resolveKey(keys: VerifyOptions['keys'], kid: string | undefined): KeyObject | undefined {
  if (!kid) return undefined;
  if ('keys' in keys && Array.isArray(keys.keys)) {
    const jwk = (keys.keys as JWK[]).find((k) => k.kid === kid);
    return jwk ? ed25519Only(createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' })) : undefined;
  }
  // Own properties only: a kid like "constructor" must not resolve to something from the prototype.
  const map = keys as Record<string, KeyObject>;
  return Object.hasOwn(map, kid) ? ed25519Only(map[kid]) : undefined;
}

/** A trusted-key entry of another type is no key for an EdDSA document; treat it as unknown. */
function ed25519Only(key: KeyObject | undefined): KeyObject | undefined {
  return key?.type === 'public' && key.asymmetricKeyType === 'ed25519' ? key : undefined;
}

/** Verifies a deployment document and fails closed on every way it can be wrong. */
export async function verifyDeployment(jws: string, opts: VerifyOptions): Promise<DeploymentDocument> {
  let payload: Uint8Array;
  try {
    // Verifying is node:crypto (jose-open.ts), as signing is, so the gateway loads no jose.
    payload = verifyCompactEdDSA(jws, (header) => {
      if (header.typ !== DEPLOYMENT_TYP) throw new DeploymentRejected('malformed', `typ ${String(header.typ)} is not ${DEPLOYMENT_TYP}`);
      const key = resolveKey(opts.keys, typeof header.kid === 'string' ? header.kid : undefined);
      if (!key) throw new DeploymentRejected('unknown-key', `no trusted key with kid ${String(header.kid)}`);
      return key;
    }).payload;
  } catch (err) {
    if (err instanceof DeploymentRejected) throw err;
    if (!(err instanceof JoseRefused)) throw new DeploymentRejected('malformed', (err as Error).message);
    // alg "none", HS256 with the public key as secret, and the like: refused before any key is looked at.
    throw new DeploymentRejected(err.code === 'malformed' ? 'malformed' : 'bad-signature', err.message);
  }
  let doc: DeploymentDocument;
  try {
    doc = documentShape.parse(JSON.parse(new TextDecoder().decode(payload))) as unknown as DeploymentDocument;
  } catch (err) {
    throw new DeploymentRejected('malformed', `payload is not a deployment document: ${(err as Error).message}`);
  }
  if (doc.manifest.name !== doc.spec.name || doc.manifest.version !== doc.spec.version || doc.manifest.digest !== canonicalDigest(doc.spec)) {
    throw new DeploymentRejected('malformed', `manifest ${doc.manifest.name}@${doc.manifest.version} ${doc.manifest.digest} does not describe its spec (${doc.spec.name}@${doc.spec.version} ${canonicalDigest(doc.spec)})`);
  }
  const missing = secretsUsed(doc.spec).filter((n) => !doc.secrets || !Object.hasOwn(doc.secrets, n));
  if (missing.length) throw new DeploymentRejected('malformed', `the spec mounts secret${missing.length === 1 ? '' : 's'} ${missing.join(', ')} that the document does not carry`);
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  if (doc.device !== opts.device) throw new DeploymentRejected('wrong-device', `document is for ${doc.device}, this device is ${opts.device}`);
  if (doc.exp <= now) throw new DeploymentRejected('expired', `expired at ${new Date(doc.exp * 1000).toISOString()}`);
  if (opts.lastSequence !== undefined && doc.sequence <= opts.lastSequence) {
    throw new DeploymentRejected('replayed', `sequence ${doc.sequence} is not above the last applied ${opts.lastSequence}`);
  }
  return doc;
}
