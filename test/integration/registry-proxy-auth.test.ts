import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN, type PullAccess } from '../../protocol/tokens.js';
import { startRegistryProxy, type RunningProxy } from '../../registry-proxy/index.js';
import { forgeImage, type ForgedImage } from '../rig/forge.js';
import { rigFromEnv } from '../rig/index.js';

/**
 * Pull tokens: a stand-in control plane (a real HTTP server on 127.0.0.1 serving a JWKS of real
 * Ed25519 keys) signs tokens the way the control plane does; the proxy checks them.
 */

interface Signer {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function newSigner(kid: string): Promise<Signer> {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' } };
}

function mint(signer: Signer, access: PullAccess, over: { typ?: string; aud?: string; iss?: string; exp?: string | number } = {}): Promise<string> {
  return new SignJWT({ access })
    .setProtectedHeader({ alg: 'EdDSA', typ: over.typ ?? TOKEN.pullTyp, kid: signer.kid })
    .setIssuer(over.iss ?? TOKEN.issuer)
    .setAudience(over.aud ?? TOKEN.pullAudience)
    .setSubject('device-7')
    .setIssuedAt()
    .setExpirationTime(over.exp ?? '5m')
    .sign(signer.privateKey);
}

async function code(res: Response): Promise<string> {
  return ((await res.json()) as { errors: { code: string }[] }).errors[0].code;
}

describe('registry proxy pull tokens', () => {
  const rig = rigFromEnv();
  const cacheDir = mkdtempSync(join(tmpdir(), 'berth-proxy-auth-'));
  const repo = `proxy-auth-${process.pid}`;
  const name = `rig/${repo}`;
  let jwks: JWK[] = [];
  let jwksServer: Server;
  let controlPlane: string;
  let signer: Signer;
  let proxy: RunningProxy;
  let inside: ForgedImage;
  let outside: ForgedImage;

  beforeAll(async () => {
    signer = await newSigner('key-1');
    jwks = [signer.jwk];
    jwksServer = createServer((req, res) => {
      if (req.url === '/.well-known/jwks.json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ keys: jwks }));
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
    controlPlane = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}`;
    inside = await forgeImage(rig.registry, repo, 'inside', { layers: [{ files: { '/in.txt': 'inside the desired state\n' } }] });
    outside = await forgeImage(rig.registry, repo, 'outside', { layers: [{ files: { '/out.txt': 'outside the desired state\n' } }] });
    proxy = await startRegistryProxy({ cacheDir, upstreams: [{ alias: 'rig', url: rig.registryUrl }], controlPlane, jwksCooldownMs: 0 });
  });

  afterAll(async () => {
    await proxy?.close();
    await new Promise<void>((r) => jwksServer?.close(() => r()));
    rmSync(cacheDir, { recursive: true, force: true });
  });

  const get = (path: string, token?: string, method = 'GET') =>
    fetch(`${proxy.url}${path}`, { method, headers: token ? { authorization: `Bearer ${token}` } : {} });

  it('sends a client without a token to the control plane token realm', async () => {
    const res = await get(`/v2/${name}/manifests/${inside.manifestDigest}`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(`Bearer realm="${controlPlane}/v1/registry/token",service="berth-registry-proxy",scope="repository:${name}:pull"`);
    expect(await code(res)).toBe('UNAUTHORIZED');
    const base = await get('/v2/');
    expect(base.status).toBe(401);
    expect(base.headers.get('www-authenticate')).toBe(`Bearer realm="${controlPlane}/v1/registry/token",service="berth-registry-proxy"`);
    await base.arrayBuffer();
  });

  it('refuses tokens of the wrong type, audience, issuer, signer, or past their expiry', async () => {
    const access: PullAccess = [{ type: 'repository', name, actions: ['pull'] }];
    const stranger = await newSigner('key-1');
    const bad = [
      await mint(signer, access, { typ: TOKEN.deviceTyp }),
      await mint(signer, access, { aud: TOKEN.deviceAudience }),
      await mint(signer, access, { iss: 'someone-else' }),
      await mint(signer, access, { exp: Math.floor(Date.now() / 1000) - 60 }),
      await mint(stranger, access),
    ];
    for (const token of bad) {
      const res = await get(`/v2/${name}/manifests/${inside.manifestDigest}`, token);
      expect(res.status).toBe(401);
      expect(await code(res)).toBe('UNAUTHORIZED');
    }
  });

  it('lets a device token pull its desired images and nothing else', async () => {
    const token = await mint(signer, [{ type: 'repository', name, actions: ['pull'], digests: [inside.manifestDigest] }]);
    const manifest = await get(`/v2/${name}/manifests/${inside.manifestDigest}`, token);
    expect(manifest.status).toBe(200);
    await manifest.arrayBuffer();
    for (const digest of [inside.configDigest, inside.layers[0].digest]) {
      const blob = await get(`/v2/${name}/blobs/${digest}`, token);
      expect(blob.status).toBe(200);
      await blob.arrayBuffer();
    }
    const refusals = [
      `/v2/${name}/manifests/${outside.manifestDigest}`,
      `/v2/${name}/blobs/${outside.layers[0].digest}`,
      `/v2/${name}/blobs/${outside.configDigest}`,
      `/v2/${name}/manifests/inside`,
      `/v2/rig/other-${repo}/manifests/${inside.manifestDigest}`,
    ];
    for (const path of refusals) {
      const res = await get(path, token);
      expect({ path, status: res.status, code: await code(res) }).toEqual({ path, status: 403, code: 'DENIED' });
    }
    expect(await proxy.metrics.value('berth_proxy_auth_failures_total', { reason: 'scope' })).toBeGreaterThanOrEqual(refusals.length);
  });

  it('lets an operator token pull a whole repository by tag', async () => {
    const token = await mint(signer, [{ type: 'repository', name, actions: ['pull'] }]);
    const res = await get(`/v2/${name}/manifests/outside`, token);
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-content-digest')).toBe(outside.manifestDigest);
    await res.arrayBuffer();
  });

  it('follows a key rotation of the control plane', async () => {
    const next = await newSigner('key-2');
    jwks = [next.jwk];
    const token = await mint(next, [{ type: 'repository', name, actions: ['pull'] }]);
    const res = await get(`/v2/${name}/manifests/inside`, token);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    signer = next;
  });

  it('warms the cache on request of an authorized caller', async () => {
    const token = await mint(signer, [{ type: 'repository', name, actions: ['pull'] }]);
    expect(await proxy.cache.onDisk(outside.layers[0].digest)).toBe(false);
    const denied = await fetch(`${proxy.url}/berth/v1/warm`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ images: [`${name}:outside`] }) });
    expect(denied.status).toBe(401);
    await denied.arrayBuffer();
    const res = await fetch(`${proxy.url}/berth/v1/warm`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ images: [`${name}:outside`] }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { warmed: { digest: string; blobs: number }[] };
    expect(body.warmed[0]).toMatchObject({ digest: outside.manifestDigest, blobs: 2 });
    expect(await proxy.cache.onDisk(outside.layers[0].digest)).toBe(true);
    expect(await proxy.cache.onDisk(outside.configDigest)).toBe(true);
  });
});
