import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { CompactSign, exportJWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../manifests/canonical.js';
import { DEPLOYMENT_TYP, DeploymentRejected, deploymentPayload, signDeployment, signDeploymentPayload, verifyDeployment, type DeploymentDocument, type RejectReason, type VerifyOptions } from '../../protocol/deployment.js';
import { generateEd25519 } from '../../protocol/keys.js';
import { manifestDigest, parseManifest } from '../../manifests/parse.js';
import type { Manifest } from '../../manifests/model.js';

const NOW = 1_800_000_000;
const signer = generateEd25519();
const other = generateEd25519();
const KID = 'cp-2026';

function pinnedSpec(): Manifest {
  const r = parseManifest(
    `name: weather-station\nversion: 1.4.0\nservices:\n  collector:\n    image: registry.example.com/acme/collector@sha256:${'c'.repeat(64)}\n`,
    'spec.yaml',
  );
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.manifest;
}

function doc(over: Partial<DeploymentDocument> = {}): DeploymentDocument {
  const spec = over.spec ?? pinnedSpec();
  return {
    device: 'gw-0001',
    sequence: 7,
    iat: NOW - 60,
    exp: NOW + 3600,
    manifest: { name: spec.name, version: spec.version, digest: manifestDigest(spec) },
    spec,
    ...over,
  };
}

const trust = (): VerifyOptions => ({ keys: { [KID]: signer.publicKey }, device: 'gw-0001', lastSequence: 6, now: NOW });

async function rejection(jws: string, opts: VerifyOptions = trust()): Promise<RejectReason> {
  try {
    await verifyDeployment(jws, opts);
  } catch (err) {
    if (err instanceof DeploymentRejected) return err.reason;
    throw err;
  }
  throw new Error('document was accepted');
}

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

describe('deployment documents', () => {
  it('accepts a well-signed document for this device above the last sequence', async () => {
    const d = doc();
    const jws = await signDeployment(d, { privateKey: signer.privateKey, kid: KID });
    const header = JSON.parse(Buffer.from(jws.split('.')[0], 'base64url').toString());
    expect(header).toEqual({ alg: 'EdDSA', typ: DEPLOYMENT_TYP, kid: KID });
    expect(await verifyDeployment(jws, trust())).toEqual(d);
  });

  it('accepts keys given as a JWKS (as pinned at enrollment)', async () => {
    const jwk = { ...(await exportJWK(signer.publicKey)), kid: KID };
    const jws = await signDeployment(doc(), { privateKey: signer.privateKey, kid: KID });
    const verified = await verifyDeployment(jws, { ...trust(), keys: { keys: [jwk] } });
    expect(verified.sequence).toBe(7);
  });

  it('accepts the first document when nothing was applied yet', async () => {
    const jws = await signDeployment(doc({ sequence: 0 }), { privateKey: signer.privateKey, kid: KID });
    expect((await verifyDeployment(jws, { ...trust(), lastSequence: undefined })).sequence).toBe(0);
  });

  it('refuses a tampered payload (bad signature)', async () => {
    const jws = await signDeployment(doc(), { privateKey: signer.privateKey, kid: KID });
    const [h, , s] = jws.split('.');
    const tampered = `${h}.${b64(canonicalJson(doc({ sequence: 8_000 })))}.${s}`;
    expect(await rejection(tampered)).toBe('bad-signature');
  });

  it('refuses a document signed by another key under a trusted kid', async () => {
    const jws = await signDeployment(doc(), { privateKey: other.privateKey, kid: KID });
    expect(await rejection(jws)).toBe('bad-signature');
  });

  it('refuses an unknown kid', async () => {
    const jws = await signDeployment(doc(), { privateKey: other.privateKey, kid: 'attacker' });
    expect(await rejection(jws)).toBe('unknown-key');
    const jwks = { keys: [{ ...(await exportJWK(signer.publicKey)), kid: KID }] };
    expect(await rejection(jws, { ...trust(), keys: jwks })).toBe('unknown-key');
  });

  it('refuses kids that name inherited properties', async () => {
    const jws = await signDeployment(doc(), { privateKey: signer.privateKey, kid: 'constructor' });
    expect(await rejection(jws)).toBe('unknown-key');
  });

  it('refuses a trusted kid that maps to a non-Ed25519 key', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jws = await signDeployment(doc(), { privateKey: signer.privateKey, kid: KID });
    expect(await rejection(jws, { ...trust(), keys: { [KID]: rsa.publicKey as KeyObject } })).toBe('unknown-key');
  });

  it('refuses a document for another device', async () => {
    const jws = await signDeployment(doc({ device: 'gw-0002' }), { privateKey: signer.privateKey, kid: KID });
    expect(await rejection(jws)).toBe('wrong-device');
  });

  it('refuses an expired document, including at the expiry second', async () => {
    const jws = await signDeployment(doc({ exp: NOW - 1 }), { privateKey: signer.privateKey, kid: KID });
    expect(await rejection(jws)).toBe('expired');
    const atExpiry = await signDeployment(doc({ exp: NOW }), { privateKey: signer.privateKey, kid: KID });
    expect(await rejection(atExpiry)).toBe('expired');
  });

  it('refuses a sequence not above the last applied one (rollback, replay)', async () => {
    for (const sequence of [6, 5, 0]) {
      const jws = await signDeployment(doc({ sequence }), { privateKey: signer.privateKey, kid: KID });
      expect(await rejection(jws)).toBe('replayed');
    }
  });

  it('refuses another typ', async () => {
    const payload = b64(canonicalJson(doc()));
    const header = b64({ alg: 'EdDSA', typ: 'JWT', kid: KID });
    const { sign } = await import('node:crypto');
    const sig = sign(null, Buffer.from(`${header}.${payload}`), signer.privateKey).toString('base64url');
    expect(await rejection(`${header}.${payload}.${sig}`)).toBe('malformed');
  });

  it('refuses alg none', async () => {
    const forged = `${b64({ alg: 'none', typ: DEPLOYMENT_TYP, kid: KID })}.${b64(canonicalJson(doc({ sequence: 99 })))}.`;
    expect(await rejection(forged)).toBe('bad-signature');
  });

  it('refuses HS256 keyed with the public key (algorithm confusion)', async () => {
    const header = b64({ alg: 'HS256', typ: DEPLOYMENT_TYP, kid: KID });
    const payload = b64(canonicalJson(doc({ sequence: 99 })));
    const secret = signer.publicKey.export({ format: 'der', type: 'spki' });
    const mac = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
    expect(await rejection(`${header}.${payload}.${mac}`)).toBe('bad-signature');
  });

  it('refuses a spec with an unpinned image', async () => {
    const spec = pinnedSpec();
    spec.services.collector.image = 'registry.example.com/acme/collector:1.4.0';
    const jws = await signDeployment(doc({ spec }), { privateKey: signer.privateKey, kid: KID });
    expect(await rejection(jws)).toBe('malformed');
  });

  it('refuses a spec that is not a normalized manifest', async () => {
    const spec = { ...pinnedSpec(), services: { collector: { image: `registry.example.com/a@sha256:${'c'.repeat(64)}`, privileged: true } } } as unknown as Manifest;
    const jws = await signDeployment(doc({ spec }), { privateKey: signer.privateKey, kid: KID });
    expect(await rejection(jws)).toBe('malformed');
  });

  it('refuses a manifest digest that does not describe the spec', async () => {
    const d = doc();
    const jws = await signDeployment({ ...d, manifest: { ...d.manifest, digest: 'sha256:' + '0'.repeat(64) } }, { privateKey: signer.privateKey, kid: KID });
    expect(await rejection(jws)).toBe('malformed');
  });

  it('refuses garbage', async () => {
    expect(await rejection('not.a.jws')).toBe('malformed');
    expect(await rejection('')).toBe('malformed');
  });

  it('signs the very bytes jose signed (node:crypto, not WebCrypto: same header, payload and Ed25519 signature)', async () => {
    const withAll = doc({ campaign: 'cmp-1', secrets: { db: { ref: 'v1', jwe: 'a.b.c.d.e' } } });
    for (const d of [doc(), withAll, doc({ device: 'gw-ü', sequence: 1 })]) {
      const viaJose = await new CompactSign(new TextEncoder().encode(canonicalJson(d))).setProtectedHeader({ alg: 'EdDSA', typ: DEPLOYMENT_TYP, kid: KID }).sign(signer.privateKey);
      expect(await signDeployment(d, { privateKey: signer.privateKey, kid: KID })).toBe(viaJose);
    }
  });

  it('refuses to sign with a key that is not an Ed25519 private key', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expect(() => signDeploymentPayload('{}', { privateKey: rsa.privateKey, kid: KID })).toThrow(/Ed25519 private key/);
    expect(() => signDeploymentPayload('{}', { privateKey: signer.publicKey, kid: KID })).toThrow(/Ed25519 private key/);
  });

  it('builds the canonical payload from the spec serialized apart', () => {
    for (const d of [doc(), doc({ campaign: 'c' }), doc({ secrets: { s: { ref: 'r', jwe: 'j' } }, campaign: 'z' })]) {
      const { spec, ...rest } = d;
      expect(deploymentPayload(rest, canonicalJson(spec))).toBe(canonicalJson(d));
    }
  });
});
