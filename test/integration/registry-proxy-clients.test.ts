import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN } from '../../protocol/tokens.js';
import { startRegistryProxy, type RunningProxy } from '../../registry-proxy/index.js';
import { busyboxLayer, forgeImage, type ForgedImage } from '../rig/forge.js';
import { rigFromEnv } from '../rig/index.js';
import { runCaptured } from './cli-support.js';

/** Real clients through the proxy: the rig's dockerd and skopeo, unchanged. */

const run = promisify(execFile);
const rig = rigFromEnv();
const docker = new Docker({ socketPath: rig.dockerSocket });

async function pull(reference: string, authconfig?: Docker.AuthConfig): Promise<void> {
  const stream = await docker.pull(reference, authconfig ? { authconfig } : {});
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null, events: { error?: string }[]) => {
      const failed = events?.find((e) => e.error);
      if (err || failed) reject(err ?? new Error(failed!.error));
      else resolve();
    });
  });
}

describe('docker and skopeo through the registry proxy', () => {
  const repo = `proxy-clients-${process.pid}`;
  const dirs: string[] = [];
  const images: string[] = [];
  let anonymous: RunningProxy;
  let image: ForgedImage;
  let host: string;

  beforeAll(async () => {
    image = await forgeImage(rig.registry, repo, 'v1', {
      layers: [busyboxLayer(), { files: { '/etc/berth-proxy': `pulled through the proxy ${process.pid}\n` } }],
      config: { Cmd: ['/bin/cat', '/etc/berth-proxy'] },
    });
    const cacheDir = mkdtempSync(join(tmpdir(), 'berth-proxy-clients-'));
    dirs.push(cacheDir);
    anonymous = await startRegistryProxy({ cacheDir, upstreams: [{ alias: 'rig', url: rig.registryUrl }], anonymous: true });
    host = new URL(anonymous.url).host;
  });

  afterAll(async () => {
    for (const i of images) await docker.getImage(i).remove({ force: true }).catch(() => undefined);
    await anonymous?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('docker pulls by tag and by digest and gets the upstream image', async () => {
    const byTag = `${host}/rig/${repo}:v1`;
    const byDigest = `${host}/rig/${repo}@${image.manifestDigest}`;
    images.push(byTag, byDigest);
    await pull(byTag);
    await pull(byDigest);
    const info = await docker.getImage(byDigest).inspect();
    expect(info.RepoDigests).toContain(`${host}/rig/${repo}@${image.manifestDigest}`);
    expect(info.Id).toBe(image.configDigest);
    expect(info.RootFS.Layers).toEqual(image.layers.map((l) => l.diffId));
    // The busybox layer may already be in dockerd from other tests; the per-run layer is not.
    expect(await anonymous.cache.onDisk(image.layers[1].digest)).toBe(true);
  });

  it('skopeo inspects and copies through it', async () => {
    const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${host}/rig/${repo}:v1`]);
    const inspected = JSON.parse(stdout) as { Digest: string; Layers: string[] };
    expect(inspected.Digest).toBe(image.manifestDigest);
    expect(inspected.Layers).toEqual(image.layers.map((l) => l.digest));
    const out = mkdtempSync(join(tmpdir(), 'berth-skopeo-'));
    dirs.push(out);
    await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${host}/rig/${repo}@${image.manifestDigest}`, `dir:${join(out, 'img')}`]);
    const manifest = readFileSync(join(out, 'img', 'manifest.json'));
    expect('sha256:' + (await import('node:crypto')).createHash('sha256').update(manifest).digest('hex')).toBe(image.manifestDigest);
  });

  it('berth registry-proxy warm (cli/commands/warm.ts) fills the cache from a user image reference', async () => {
    const img = await forgeImage(rig.registry, repo, 'warm', { layers: [{ files: { '/warm.txt': `warm ${process.pid}\n` } }] });
    expect(await anonymous.cache.onDisk(img.layers[0].digest)).toBe(false);
    const ok = await runCaptured(['registry-proxy', 'warm', '--proxy', anonymous.url, `${rig.registry}/${repo}:warm`], {});
    expect(ok.code, ok.stderr).toBe(0);
    expect(await anonymous.cache.onDisk(img.layers[0].digest)).toBe(true);
    expect(await anonymous.cache.onDisk(img.configDigest)).toBe(true);
    const refused = await runCaptured(['registry-proxy', 'warm', '--proxy', anonymous.url, `registry.example.com/${repo}:warm`], {});
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/registry.example.com is not mirrored/);
    const missing = await runCaptured(['registry-proxy', 'warm', '--proxy', anonymous.url], {});
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/missing IMAGE/);
  });

  describe('with pull tokens from the control plane token realm', () => {
    let realm: Server;
    let proxy: RunningProxy;
    const password = `operator-${process.pid}`;
    const scopes: string[] = [];

    beforeAll(async () => {
      const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
      const jwk = { ...(await exportJWK(publicKey)), kid: 'cp-1', alg: 'EdDSA', use: 'sig' };
      // A stand-in for the control plane's side of the exchange: JWKS plus the Docker token endpoint.
      realm = createServer((req, res) => {
        const url = new URL(req.url ?? '/', 'http://x');
        if (url.pathname === '/.well-known/jwks.json') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
        if (url.pathname !== '/v1/registry/token') return void res.writeHead(404).end();
        const basic = Buffer.from(String(req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString();
        if (!basic.endsWith(`:${password}`)) return void res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"bad credentials"}');
        const scope = url.searchParams.get('scope') ?? '';
        scopes.push(scope);
        const m = /^repository:([^:]+):pull$/.exec(scope);
        const access = m ? [{ type: 'repository', name: m[1], actions: ['pull'] }] : [];
        void new SignJWT({ access })
          .setProtectedHeader({ alg: 'EdDSA', typ: TOKEN.pullTyp, kid: 'cp-1' })
          .setIssuer(TOKEN.issuer)
          .setAudience(TOKEN.pullAudience)
          .setSubject('operator:ops')
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(privateKey)
          .then((token) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() })));
      });
      await new Promise<void>((r) => realm.listen(0, '127.0.0.1', r));
      const controlPlane = `http://127.0.0.1:${(realm.address() as AddressInfo).port}`;
      const cacheDir = mkdtempSync(join(tmpdir(), 'berth-proxy-clients-auth-'));
      dirs.push(cacheDir);
      proxy = await startRegistryProxy({ cacheDir, upstreams: [{ alias: 'rig', url: rig.registryUrl }], controlPlane });
    });

    afterAll(async () => {
      await proxy?.close();
      await new Promise<void>((r) => realm?.close(() => r()));
    });

    it('docker does the token dance against the realm and pulls', async () => {
      const proxyHost = new URL(proxy.url).host;
      const ref = `${proxyHost}/rig/${repo}@${image.manifestDigest}`;
      images.push(ref);
      await expect(pull(ref)).rejects.toThrow();
      await pull(ref, { username: 'ops', password, serveraddress: proxyHost });
      expect(scopes).toContain(`repository:rig/${repo}:pull`);
      const info = await docker.getImage(ref).inspect();
      expect(info.Id).toBe(image.configDigest);
    });

    it('skopeo does the same with --creds', async () => {
      const proxyHost = new URL(proxy.url).host;
      const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', '--creds', `ops:${password}`, `docker://${proxyHost}/rig/${repo}:v1`]);
      expect((JSON.parse(stdout) as { Digest: string }).Digest).toBe(image.manifestDigest);
      await expect(run('skopeo', ['inspect', '--tls-verify=false', `docker://${proxyHost}/rig/${repo}:v1`])).rejects.toThrow();
    });
  });
});
