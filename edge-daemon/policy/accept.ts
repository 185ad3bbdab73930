import type { KeyObject } from 'node:crypto';
import { DeploymentRejected, verifyDeployment, type RejectReason, type VerifyOptions } from '../../protocol/deployment.js';
import { decodeProtectedHeader } from '../../protocol/jose-open.js';
import type { Release } from '../reconcile/spec.js';
import type { Journal } from '../state.js';

/**
 * Which desired-state document the daemon applies, ignores or refuses. Verification (signature,
 * key, device, expiry) is `readDocument`; what a valid document means given the journal is `accept`.
 */

/** A document after verification: the release it names, or why it cannot be trusted. */
export type ReadDocument = { kind: 'valid'; release: Release } | { kind: 'invalid'; reason: RejectReason; message: string };

export type Verdict =
  /** `retry`: the same sequence failed before for a reason that may heal (download, engine). */
  | { kind: 'apply'; release: Release; retry: boolean }
  /** Already handled: it runs, or it was rolled back and only a higher sequence is applied. */
  | { kind: 'ignore'; why: 'running' | 'rolled-back' }
  /** Nothing runs differently; the reason is reported. */
  | { kind: 'refuse'; reason: RejectReason; message: string };

export interface TrustedKeys {
  /** The JWKS pinned at enrollment. */
  jwks: VerifyOptions['keys'];
  /** An operator-provided key (`--trust-key`): the only trusted one, whatever kid a document names. */
  trustKey?: KeyObject;
}

/** Verifies a document's signature, key, device and expiry; only an unexpected failure throws. */
export async function readDocument(jws: string, trusted: TrustedKeys, device: string, nowSeconds?: number): Promise<ReadDocument> {
  try {
    let keys: VerifyOptions['keys'] = trusted.jwks;
    if (trusted.trustKey) {
      try {
        const { kid } = decodeProtectedHeader(jws);
        keys = { [typeof kid === 'string' ? kid : '']: trusted.trustKey };
      } catch (err) {
        throw new DeploymentRejected('malformed', (err as Error).message);
      }
    }
    const doc = await verifyDeployment(jws, { keys, device, now: nowSeconds });
    const release: Release = { sequence: doc.sequence, name: doc.manifest.name, version: doc.manifest.version, digest: doc.manifest.digest, spec: doc.spec };
    if (doc.secrets && Object.keys(doc.secrets).length) release.secrets = doc.secrets;
    return { kind: 'valid', release };
  } catch (err) {
    if (!(err instanceof DeploymentRejected)) throw err;
    return { kind: 'invalid', reason: err.reason, message: err.message };
  }
}

/**
 * A valid document above the last accepted sequence is applied. At or below it: the running one is
 * ignored; one that failed for a reason that may heal is tried again; one that was rolled back is
 * ignored (a bad release is not applied in a loop); anything else is a replay and refused.
 */
export function accept(document: ReadDocument, journal: Pick<Journal, 'current' | 'lastSequence' | 'failure'>): Verdict {
  if (document.kind === 'invalid') return { kind: 'refuse', reason: document.reason, message: document.message };
  const { release } = document;
  const last = journal.lastSequence;
  if (last === null || release.sequence > last) return { kind: 'apply', release, retry: false };
  if (release.sequence === journal.current?.sequence) return { kind: 'ignore', why: 'running' };
  const failed = journal.failure?.sequence === release.sequence ? journal.failure : null;
  if (failed?.phase === 'rolled-back') return { kind: 'ignore', why: 'rolled-back' };
  if (failed?.phase === 'failed') return { kind: 'apply', release, retry: true };
  return { kind: 'refuse', reason: 'replayed', message: new DeploymentRejected('replayed', `sequence ${release.sequence} is not above the last applied ${last}`).message };
}
