import { exportJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { signDeployment, type DeploymentDocument } from '../../protocol/deployment.js';
import { generateEd25519 } from '../../protocol/keys.js';
import { manifestDigest, parseManifest } from '../../manifests/parse.js';
import { accept, readDocument, type ReadDocument, type TrustedKeys } from '../../edge-daemon/policy/accept.js';
import type { Release } from '../../edge-daemon/reconcile/spec.js';
import { EMPTY_JOURNAL, type Journal } from '../../edge-daemon/state.js';

const NOW = 1_800_000_000;
const DEVICE = 'gw-0001';
const KID = 'cp-2026';
const signer = generateEd25519();
const stranger = generateEd25519();

function document(over: Partial<DeploymentDocument> = {}): DeploymentDocument {
  const r = parseManifest(`name: site\nversion: 1.0.0\nservices:\n  web:\n    image: registry.example.com/acme/web@sha256:${'c'.repeat(64)}\n`, 'site.yaml');
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  const spec = r.manifest;
  return { device: DEVICE, sequence: 7, iat: NOW - 60, exp: NOW + 3600, manifest: { name: spec.name, version: spec.version, digest: manifestDigest(spec) }, spec, ...over };
}

const sign = (doc: DeploymentDocument, key = signer.privateKey, kid = KID) => signDeployment(doc, { privateKey: key, kid });

async function pinned(): Promise<TrustedKeys> {
  return { jwks: { keys: [{ ...(await exportJWK(signer.publicKey)), kid: KID }] } };
}

const read = async (jws: string, trusted?: TrustedKeys) => readDocument(jws, trusted ?? (await pinned()), DEVICE, NOW);

function release(sequence: number): Release {
  const d = document({ sequence });
  return { sequence, name: d.manifest.name, version: d.manifest.version, digest: d.manifest.digest, spec: d.spec };
}
const valid = (sequence: number): ReadDocument => ({ kind: 'valid', release: release(sequence) });
const journal = (over: Partial<Journal>): Journal => ({ ...EMPTY_JOURNAL, ...over });

describe('readDocument: every way a document cannot be trusted is refused with its reason', () => {
  it('a valid document yields its release', async () => {
    const got = await read(await sign(document()));
    expect(got).toEqual({ kind: 'valid', release: release(7) });
  });

  it('malformed: not a JWS', async () => {
    expect(await read('not-a-jws')).toMatchObject({ kind: 'invalid', reason: 'malformed' });
  });

  it('bad-signature: a payload changed after signing', async () => {
    const [h, , s] = (await sign(document())).split('.');
    const forged = Buffer.from(JSON.stringify({ ...document(), sequence: 99 })).toString('base64url');
    expect(await read(`${h}.${forged}.${s}`)).toMatchObject({ kind: 'invalid', reason: 'bad-signature' });
  });

  it('unknown-key: signed by a key this device does not trust', async () => {
    expect(await read(await sign(document(), stranger.privateKey, 'elsewhere'))).toMatchObject({ kind: 'invalid', reason: 'unknown-key' });
  });

  it('wrong-device: signed for another device', async () => {
    expect(await read(await sign(document({ device: 'gw-0002' })))).toMatchObject({ kind: 'invalid', reason: 'wrong-device', message: expect.stringContaining('gw-0002') });
  });

  it('expired: past its exp (freeze: the running release stays)', async () => {
    expect(await read(await sign(document({ exp: NOW - 1 })))).toMatchObject({ kind: 'invalid', reason: 'expired' });
  });

  it('a trust key overrides the pinned keys whatever kid the document names', async () => {
    const trusted: TrustedKeys = { ...(await pinned()), trustKey: stranger.publicKey };
    expect(await read(await sign(document(), stranger.privateKey, 'any-kid'), trusted)).toMatchObject({ kind: 'valid' });
    // The pinned signer is no longer trusted under its own kid.
    expect(await read(await sign(document()), trusted)).toMatchObject({ kind: 'invalid', reason: 'bad-signature' });
    expect(await read('garbage', trusted)).toMatchObject({ kind: 'invalid', reason: 'malformed' });
  });
});

describe('accept: apply, ignore or refuse given the journal', () => {
  it('refuses what did not verify, with its reason and message', () => {
    expect(accept({ kind: 'invalid', reason: 'expired', message: 'expired at …' }, EMPTY_JOURNAL)).toEqual({ kind: 'refuse', reason: 'expired', message: 'expired at …' });
  });

  it('applies the first document, and any above the last accepted sequence', () => {
    expect(accept(valid(1), EMPTY_JOURNAL)).toEqual({ kind: 'apply', release: release(1), retry: false });
    expect(accept(valid(0), EMPTY_JOURNAL)).toMatchObject({ kind: 'apply' });
    expect(accept(valid(5), journal({ current: release(4), lastSequence: 4 }))).toMatchObject({ kind: 'apply', retry: false });
  });

  it('ignores the release it runs (the same document served again)', () => {
    expect(accept(valid(4), journal({ current: release(4), lastSequence: 4 }))).toEqual({ kind: 'ignore', why: 'running' });
  });

  it('replay: refuses a sequence at or below the last accepted that is neither running nor a healable failure', () => {
    const j = journal({ current: release(4), lastSequence: 6 });
    expect(accept(valid(3), j)).toEqual({ kind: 'refuse', reason: 'replayed', message: 'deployment document rejected (replayed): sequence 3 is not above the last applied 6' });
    expect(accept(valid(5), j)).toMatchObject({ kind: 'refuse', reason: 'replayed' });
    // A failure of another sequence does not open the door to this one.
    expect(accept(valid(5), { ...j, failure: { sequence: 6, phase: 'failed', error: 'x' } })).toMatchObject({ kind: 'refuse', reason: 'replayed' });
  });

  it('ignores a rolled-back release served again: it waits for a higher sequence, no apply loop', () => {
    const j = journal({ current: release(4), lastSequence: 5, failure: { sequence: 5, phase: 'rolled-back', error: 'unhealthy' } });
    expect(accept(valid(5), j)).toEqual({ kind: 'ignore', why: 'rolled-back' });
    expect(accept(valid(6), j)).toMatchObject({ kind: 'apply', retry: false });
  });

  it('tries a failed release again when its document comes again (download, engine may heal)', () => {
    const j = journal({ current: release(4), lastSequence: 5, failure: { sequence: 5, phase: 'failed', error: 'engine down' } });
    expect(accept(valid(5), j)).toEqual({ kind: 'apply', release: release(5), retry: true });
  });
});
