import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningControlPlane } from '../../control-plane/index.js';
import { startSecurityPlane, stopSecurityPlane } from './security-support.js';
import { signDeployment, type VerifyOptions } from '../../protocol/deployment.js';
import { readDocument } from '../../edge-daemon/policy/accept.js';
import { parseManifest, manifestDigest } from '../../manifests/parse.js';
import { runCaptured } from './cli-support.js';
import { call, csvOf, enroll, jwtHeader, newDevice } from './control-plane-support.js';

describe('finding 2: revoking a signing key takes effect at once', () => {
  let dir: string;
  let cp: RunningControlPlane;

  beforeAll(async () => {
    ({ dir, cp } = await startSecurityPlane('sec02'));
  });
  afterAll(() => stopSecurityPlane(cp, dir));

  it('refuses what the revoked key signed, audits it, and devices renew onto the new key (CLI verb: berth keys revoke)', async () => {
    const d = newDevice('SEC02-DEV');
    expect((await call(cp.url, 'POST', '/v1/devices/import', { token: cp.adminToken, text: csvOf([d]), type: 'text/csv' })).status).toBe(200);
    const first = await enroll(cp.url, d);
    const oldKid = jwtHeader(first.token).kid as string;
    // The token is verified once and cached: the revocation must reach past the cache.
    expect((await call(cp.url, 'GET', '/v1/device/desired', { token: first.token })).status).toBe(204);
    const oldKey = cp.ctx.keys.active();

    const viewer = await call(cp.url, 'POST', '/v1/tokens', { token: cp.adminToken, json: { name: 'v', role: 'viewer' } });
    expect((await call(cp.url, 'POST', `/v1/keys/${oldKid}/revoke`, { token: viewer.body.token })).status).toBe(403);
    expect((await call(cp.url, 'POST', '/v1/keys/k-nope/revoke', { token: cp.adminToken })).status).toBe(404);

    const env = { HOME: dir, XDG_CONFIG_HOME: join(dir, 'cfg'), BERTH_SERVER: cp.url, BERTH_TOKEN: cp.adminToken as string };
    const cli = await runCaptured(['keys', 'revoke', oldKid, '--yes'], env);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(new RegExp(`signing key ${oldKid}: revoked; k-\\S+ signs now`));

    const jwks = await call(cp.url, 'GET', '/.well-known/jwks.json');
    expect(jwks.body.keys.map((k: { kid: string }) => k.kid)).not.toContain(oldKid);
    expect(jwks.body.keys).toHaveLength(1);
    expect((await call(cp.url, 'GET', '/v1/device/desired', { token: first.token })).status).toBe(401);
    expect((await call(cp.url, 'POST', '/v1/device/pull-token', { token: first.token })).status).toBe(401);

    const audit = await call(cp.url, 'GET', '/v1/audit', { token: cp.adminToken });
    expect(audit.body.entries.filter((e: { action: string; target: string }) => e.action === 'key.revoke' && e.target === oldKid)).toHaveLength(1);
    expect((await call(cp.url, 'GET', '/v1/revocations')).body.kids).toEqual([oldKid]);

    // Renewal: a new token under the new key, and a JWKS without the revoked one, so a document the
    // old key signed (a forgery by whoever holds it) is refused by the daemon's verification.
    const renewed = await enroll(cp.url, d);
    expect(jwtHeader(renewed.token).kid).not.toBe(oldKid);
    expect((await call(cp.url, 'GET', '/v1/device/desired', { token: renewed.token })).status).toBe(204);
    const m = parseManifest(`name: x\nversion: 1.0.0\nservices:\n  a:\n    image: registry.example.com/a@sha256:${'a'.repeat(64)}\n`, 'x.yaml');
    if (!m.ok) throw new Error('manifest');
    const now = Math.floor(Date.now() / 1000);
    const forged = await signDeployment({ device: renewed.deviceId, sequence: 99, iat: now, exp: now + 600, manifest: { name: 'x', version: '1.0.0', digest: manifestDigest(m.manifest) }, spec: m.manifest }, oldKey);
    const read = await readDocument(forged, { jwks: renewed.jwks as VerifyOptions['keys'] }, renewed.deviceId);
    expect(read).toMatchObject({ kind: 'invalid', reason: 'unknown-key' });
  });
});
