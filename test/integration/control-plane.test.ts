import { createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { MANIFEST_ACCEPT } from '../../common/oci.js';
import { verifyDeployment } from '../../protocol/deployment.js';
import { controlPlaneApi } from '../../protocol/control-plane.js';
import { TOKEN } from '../../protocol/tokens.js';
import { openApiPath } from '../../protocol/route.js';
import { buildApp } from '../../control-plane/app.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { openDatabase } from '../../control-plane/db/open.js';
import { startRegistryProxy, type RunningProxy } from '../../registry-proxy/index.js';
import { forgeImage, type ForgedImage } from '../rig/forge.js';
import { freePort, rigFromEnv } from '../rig/index.js';
import { call, challengeFor, csvOf, enroll, enrollWith, jwtHeader, jwtPayload, newDevice, type TestDevice } from './control-plane-support.js';

/**
 * The control plane over real HTTP on 127.0.0.1 with a real libSQL file, resolving tags through
 * the real registry proxy (token-authenticated against this control plane's JWKS) in front of the
 * rig's CNCF registry.
 */
describe('control plane', () => {
  const rig = rigFromEnv();
  const dir = mkdtempSync(join(tmpdir(), 'berth-cp-'));
  const db = `file:${join(dir, 'berth.db')}`;
  const repo = `cp-app-${process.pid}`;
  let clockOffsetMs = 0;
  const now = () => new Date(Date.now() + clockOffsetMs);
  let cp: RunningControlPlane;
  let proxy: RunningProxy;
  let proxyUrl: string;
  let admin: string;
  let v1: ForgedImage;
  let v2: ForgedImage;
  const devs: TestDevice[] = ['gw-001', 'gw-002', 'gw-003', 'gw-004'].map(newDevice);
  const base = () => cp.url;

  const start = () =>
    startControlPlane({
      listen: '127.0.0.1:0',
      db,
      dataDir: dir,
      registryProxy: proxyUrl,
      log: createLogger('control-plane', { level: 'silent' }),
      now,
      // Sightings are flushed only at shutdown here, so the restart test shows that flush happens.
      config: { reportHistoryLimit: 5, feedTickMs: 100, lastSeenFlushMs: 3_600_000, refusalAuditWindowMs: 300 },
    });

  beforeAll(async () => {
    v1 = await forgeImage(rig.registry, repo, '1.0', { layers: [{ files: { '/app.txt': 'one\n' } }], config: { Cmd: ['/bin/true'] } });
    v2 = await forgeImage(rig.registry, repo, '1.1', { layers: [{ files: { '/app.txt': 'two\n' } }], config: { Cmd: ['/bin/true'] } });
    const proxyPort = await freePort();
    proxyUrl = `http://127.0.0.1:${proxyPort}`;
    cp = await start();
    admin = cp.adminToken as string;
    proxy = await startRegistryProxy({
      listen: `127.0.0.1:${proxyPort}`,
      cacheDir: join(dir, 'proxy-cache'),
      upstreams: [{ alias: 'rig', url: rig.registryUrl }],
      controlPlane: cp.url,
      tagTtlMs: 0,
      log: createLogger('registry-proxy', { level: 'silent' }),
    });
  });

  afterAll(async () => {
    await proxy?.close();
    await cp?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const manifestYaml = (version: string, tag: string, extra = '') =>
    `name: cp-app\nversion: ${version}\nservices:\n  web:\n    image: ${rig.registry}/${repo}:${tag}\n${extra}`;

  it('bootstraps: admin token file 0600, health, JWKS, metrics', async () => {
    const file = join(dir, 'admin.token');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8').trim()).toBe(admin);
    expect((await call(base(), 'GET', '/healthz')).body).toEqual({ status: 'ok' });
    const jwks = await call(base(), 'GET', '/.well-known/jwks.json');
    expect(jwks.body.keys).toHaveLength(1);
    expect(jwks.body.keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA' });
    const metrics = await call(base(), 'GET', '/metrics');
    expect(metrics.body).toContain('berth_cp_http_requests_total{method="GET",route="/.well-known/jwks.json",status="200"} 1');
  });

  it('describes exactly the mounted routes in /openapi.json, each with its real success status and body', async () => {
    const doc = (await call(base(), 'GET', '/openapi.json')).body as { paths: Record<string, Record<string, { responses: Record<string, { content?: object }> }>> };
    const mounted = new Set(
      buildApp(cp.ctx)
        .routes.filter((r) => r.method !== 'ALL')
        .map((r) => `${r.method.toLowerCase()} ${openApiPath(r.path)}`),
    );
    const described = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`));
    expect(mounted.size).toBe(controlPlaneApi.routes.length);
    expect(new Set(described)).toEqual(mounted);
    for (const [p, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const successes = Object.keys(op.responses).filter((s) => /^[23]\d\d$/.test(s));
        // Each operation's main answer has a body the description spells out.
        expect(successes.some((s) => op.responses[s].content !== undefined), `${method} ${p}`).toBe(true);
        // 204 is the device's "nothing assigned" only; no other GET answers without a body.
        if (method === 'get' && p !== '/v1/device/desired') expect(successes, `${method} ${p}`).not.toContain('204');
      }
    }
  });

  it('renders the description at /docs from files it serves itself, under a strict CSP', async () => {
    const page = await fetch(base() + '/docs');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe');
    const html = await page.text();
    const links = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(links.filter((l) => /^[a-z]+:|^\/\//i.test(l))).toEqual([]);
    expect(links).toEqual(expect.arrayContaining(['docs/swagger-ui-bundle.js', 'docs/swagger-ui.css', 'docs/init.js']));
    for (const link of links) {
      const asset = await fetch(new URL(link, base() + '/docs'));
      expect(asset.status, link).toBe(200);
      expect(asset.headers.get('content-security-policy'), link).toBe(csp);
      expect((await asset.arrayBuffer()).byteLength, link).toBeGreaterThan(0);
    }
    // The initializer points Swagger UI at this server's description, and nowhere else.
    const init = await (await fetch(base() + '/docs/init.js')).text();
    expect(init).toContain("url: 'openapi.json'");
    expect(init).toContain('validatorUrl: null');
    expect((await fetch(base() + '/docs/package.json')).status).toBe(404);
  });

  describe('device import', () => {
    it('imports CSV and is idempotent on re-import', async () => {
      const csv = csvOf(devs.slice(0, 3), (d) => `site=berlin;model=${d.serial === 'gw-003' ? 'b' : 'a'}`);
      const first = await call(base(), 'POST', '/v1/devices/import', { token: admin, text: csv, type: 'text/csv' });
      expect(first.status).toBe(200);
      expect(first.body).toEqual({ created: 3, updated: 0, unchanged: 0 });
      const again = await call(base(), 'POST', '/v1/devices/import', { token: admin, text: csv, type: 'text/csv' });
      expect(again.body).toEqual({ created: 0, updated: 0, unchanged: 3 });
      const list = await call(base(), 'GET', '/v1/devices?selector=' + encodeURIComponent('site=berlin,model in (b)'), { token: admin });
      expect(list.body.devices.map((d: { serial: string }) => d.serial)).toEqual(['gw-003']);
      const bad = await call(base(), 'GET', '/v1/devices?selector=' + encodeURIComponent('site in (berlin'), { token: admin });
      expect(bad.status).toBe(400);
      expect(bad.body.error).toMatchObject({ code: 'invalid-selector', field: 'selector' });
    });

    it('imports JSON lines with a PEM key', async () => {
      const d = devs[3];
      const pem = createPublicKey(d.privateKey).export({ format: 'pem', type: 'spki' });
      const line = JSON.stringify({ serial: d.serial, public_key: pem, labels: { site: 'paris' } });
      const r = await call(base(), 'POST', '/v1/devices/import', { token: admin, text: line + '\n', type: 'application/x-ndjson' });
      expect(r.body).toEqual({ created: 1, updated: 0, unchanged: 0 });
      const twin = await call(base(), 'GET', `/v1/devices/${d.serial}`, { token: admin });
      expect(twin.body).toMatchObject({ serial: d.serial, labels: { site: 'paris' }, status: 'registered', online: false, desired: null });
    });

    it('refuses a file with a bad row by line number and imports nothing of it', async () => {
      const good = newDevice('gw-new-1');
      const csv = `serial,public_key,labels\n${good.serial},${good.publicKey},site=rome\nbad serial!,${good.publicKey},\ngw-new-2,not-a-key,\n`;
      const r = await call(base(), 'POST', '/v1/devices/import', { token: admin, text: csv, type: 'text/csv' });
      expect(r.status).toBe(422);
      expect(r.body.errors.map((e: { line: number }) => e.line)).toEqual([3, 4]);
      expect(r.body.errors[1].message).toContain('public_key');
      expect((await call(base(), 'GET', `/v1/devices/${good.serial}`, { token: admin })).status).toBe(404);
      const jsonl = `{"serial":"gw-new-3","public_key":"${good.publicKey}"}\n{"serial":\n`;
      const j = await call(base(), 'POST', '/v1/devices/import', { token: admin, text: jsonl, type: 'application/x-ndjson' });
      expect(j.status).toBe(422);
      expect(j.body.errors).toEqual([{ line: 2, message: 'not valid JSON' }]);
      expect((await call(base(), 'GET', '/v1/devices/gw-new-3', { token: admin })).status).toBe(404);
    });
  });

  describe('enrollment', () => {
    it('enrolls with a proof from the recorded key and hands out token, proxy URL and JWKS', async () => {
      const e = await enroll(base(), devs[0]);
      expect(e.deviceId).toMatch(/^dev_/);
      expect(jwtHeader(e.token)).toMatchObject({ alg: 'EdDSA', typ: TOKEN.deviceTyp });
      expect(jwtPayload(e.token)).toMatchObject({ sub: e.deviceId, aud: TOKEN.deviceAudience, iss: TOKEN.issuer, epoch: 0 });
      expect(e).toMatchObject({ registryProxy: proxyUrl });
      expect(e.jwks.keys).toEqual((await call(base(), 'GET', '/.well-known/jwks.json')).body.keys);
      const d = await call(base(), 'GET', `/v1/devices/${devs[0].serial}`, { token: admin });
      expect(d.body.status).toBe('enrolled');
      // Renewal: the same proof on a fresh challenge.
      const again = await enroll(base(), devs[0]);
      expect(again.deviceId).toBe(e.deviceId);
    });

    it('refuses an unknown serial, a wrong key, a replayed and a stale challenge, and audits each', async () => {
      const stranger = newDevice('gw-unknown');
      const unknown = await enrollWith(base(), stranger.serial, await challengeFor(base(), stranger.serial), stranger.privateKey);
      // Every refusal answers alike (which serials exist is not told); the reason is audited.
      expect(unknown.status).toBe(401);
      expect(unknown.body.error.code).toBe('enrollment-refused');

      const wrongKey = await enrollWith(base(), devs[1].serial, await challengeFor(base(), devs[1].serial), devs[2].privateKey);
      expect(wrongKey.status).toBe(401);
      expect(wrongKey.body).toEqual(unknown.body);

      const ch = await challengeFor(base(), devs[1].serial);
      expect((await enrollWith(base(), devs[1].serial, ch, devs[1].privateKey)).status).toBe(200);
      const replay = await enrollWith(base(), devs[1].serial, ch, devs[1].privateKey);
      expect(replay.status).toBe(401);
      expect(replay.body).toEqual(unknown.body);

      const old = await challengeFor(base(), devs[2].serial);
      clockOffsetMs += 10 * 60_000;
      try {
        const stale = await enrollWith(base(), devs[2].serial, old, devs[2].privateKey);
        expect(stale.status).toBe(401);
        expect(stale.body).toEqual(unknown.body);
      } finally {
        clockOffsetMs -= 10 * 60_000;
      }
      // Audited by address and window (security-08 shows the aggregation): every reason is counted once.
      const reasons = async () => {
        const rows = (await call(base(), 'GET', '/v1/audit', { token: admin })).body.entries.filter((e: { action: string }) => e.action === 'device.enroll.refused');
        const out: Record<string, number> = {};
        for (const { after } of rows as { after: { code: string; codes?: Record<string, number> } }[]) {
          for (const [code, n] of Object.entries(after.codes ?? { [after.code]: 1 })) out[code] = (out[code] ?? 0) + n;
        }
        return out;
      };
      const want = { 'unknown-serial': 1, 'wrong-key': 1, 'replayed-challenge': 1, 'stale-challenge': 1 };
      let got = await reasons();
      const same = (a: Record<string, number>) => Object.keys(a).length === 4 && Object.entries(want).every(([k, n]) => a[k] === n);
      for (let i = 0; i < 50 && !same(got); i++) {
        await new Promise((r) => setTimeout(r, 100));
        got = await reasons();
      }
      expect(got).toEqual(want);
    });

    it('stops a revoked device at once, token and re-enrollment alike', async () => {
      const d = newDevice('gw-revoke');
      await call(base(), 'POST', '/v1/devices/import', { token: admin, text: csvOf([d]), type: 'text/csv' });
      const e = await enroll(base(), d);
      expect((await call(base(), 'GET', '/v1/device/desired', { token: e.token })).status).toBe(204);
      expect((await call(base(), 'POST', `/v1/devices/${d.serial}/revoke`, { token: admin })).status).toBe(200);
      const after = await call(base(), 'GET', '/v1/device/desired', { token: e.token });
      expect(after.status).toBe(403);
      expect(after.body.error.code).toBe('device-revoked');
      expect((await call(base(), 'POST', '/v1/device/report', { token: e.token, json: {} })).status).toBe(403);
      const re = await enrollWith(base(), d.serial, await challengeFor(base(), d.serial), d.privateKey);
      expect(re.status).toBe(401);
      expect(re.body.error.code).toBe('enrollment-refused');
    });
  });

  describe('operators and roles', () => {
    const tokens: Record<string, string> = {};
    beforeAll(async () => {
      for (const role of ['viewer', 'release-manager', 'admin'] as const) {
        const r = await call(base(), 'POST', '/v1/tokens', { token: admin, json: { name: `t-${role}`, role } });
        expect(r.status).toBe(201);
        tokens[role] = r.body.token;
      }
    });

    const matrix: { route: string; method: string; path: string; body?: unknown; min: 'viewer' | 'release-manager' | 'admin' }[] = [
      { route: 'list devices', method: 'GET', path: '/v1/devices', min: 'viewer' },
      { route: 'twin', method: 'GET', path: '/v1/devices/gw-001', min: 'viewer' },
      { route: 'list manifests', method: 'GET', path: '/v1/manifests', min: 'viewer' },
      { route: 'label devices', method: 'PATCH', path: '/v1/devices/gw-001/labels', body: { set: { tier: 'canary' } }, min: 'release-manager' },
      { route: 'publish manifest', method: 'POST', path: '/v1/manifests', body: { source: 'name: x\n', filename: 'x.yaml' }, min: 'release-manager' },
      { route: 'import devices', method: 'POST', path: '/v1/devices/import?format=csv', body: undefined, min: 'admin' },
      { route: 'create token', method: 'POST', path: '/v1/tokens', body: { name: 'x', role: 'viewer' }, min: 'admin' },
      { route: 'list tokens', method: 'GET', path: '/v1/tokens', min: 'admin' },
      { route: 'audit log', method: 'GET', path: '/v1/audit', min: 'admin' },
    ];
    const rank = { viewer: 1, 'release-manager': 2, admin: 3 };

    for (const m of matrix) {
      it(`${m.route}: allowed from ${m.min} up, refused below and without a token`, async () => {
        for (const role of ['viewer', 'release-manager', 'admin'] as const) {
          const r = await call(base(), m.method, m.path, { token: tokens[role], json: m.body, ...(m.body === undefined && m.method === 'POST' ? { text: 'serial,public_key,labels\n', type: 'text/csv' } : {}) });
          if (rank[role] >= rank[m.min]) expect([200, 201, 422], `${role} on ${m.route}`).toContain(r.status);
          else {
            expect(r.status, `${role} on ${m.route}`).toBe(403);
            expect(r.body.error.code).toBe('forbidden');
          }
        }
        expect((await call(base(), m.method, m.path, { json: m.body })).status).toBe(401);
      });
    }

    it('refuses revoked and expired tokens and device tokens on operator routes', async () => {
      const made = await call(base(), 'POST', '/v1/tokens', { token: admin, json: { name: 'short', role: 'viewer', expiresIn: 60 } });
      expect((await call(base(), 'GET', '/v1/devices', { token: made.body.token })).status).toBe(200);
      clockOffsetMs += 2 * 60_000;
      try {
        expect((await call(base(), 'GET', '/v1/devices', { token: made.body.token })).status).toBe(401);
      } finally {
        clockOffsetMs -= 2 * 60_000;
      }
      const other = await call(base(), 'POST', '/v1/tokens', { token: admin, json: { name: 'to-revoke', role: 'admin' } });
      expect((await call(base(), 'DELETE', `/v1/tokens/${other.body.id}`, { token: admin })).body.revokedAt).not.toBeNull();
      expect((await call(base(), 'GET', '/v1/devices', { token: other.body.token })).status).toBe(401);
      const list = await call(base(), 'GET', '/v1/tokens', { token: admin });
      expect(JSON.stringify(list.body)).not.toContain(other.body.token);
      const device = await enroll(base(), devs[0]);
      expect((await call(base(), 'GET', '/v1/devices', { token: device.token })).status).toBe(401);
      expect((await call(base(), 'GET', '/v1/device/desired', { token: admin })).status).toBe(401);
      // A device token stops working when it expires, even after it was accepted (and remembered).
      expect((await call(base(), 'GET', '/v1/device/desired', { token: device.token })).status).not.toBe(401);
      clockOffsetMs += 2 * 3600_000;
      try {
        const late = await call(base(), 'GET', '/v1/device/desired', { token: device.token });
        expect(late.status).toBe(401);
        expect(late.body.error.code).toBe('invalid-token');
      } finally {
        clockOffsetMs -= 2 * 3600_000;
      }
    });

    it('audits operator changes with before and after', async () => {
      const audit = await call(base(), 'GET', '/v1/audit', { token: admin });
      const labels = audit.body.entries.find((e: { action: string }) => e.action === 'device.labels');
      expect(labels).toMatchObject({ target: 'gw-001', before: { site: 'berlin', model: 'a' }, after: { site: 'berlin', model: 'a', tier: 'canary' } });
      expect(labels.actor).toMatch(/^operator:tok_/);
      const since = await call(base(), 'GET', `/v1/audit?since=${labels.id}`, { token: admin });
      expect(since.body.entries.every((e: { id: number }) => e.id > labels.id)).toBe(true);
    });
  });

  describe('manifests', () => {
    it('publishes with every tag resolved through the registry proxy and pinned', async () => {
      const r = await call(base(), 'POST', '/v1/manifests?filename=cp-app.yaml', { token: admin, text: manifestYaml('1.0.0', '1.0'), type: 'application/yaml' });
      expect(r.status).toBe(201);
      expect(r.body.spec.services.web.image).toBe(`${rig.registry}/${repo}@${v1.manifestDigest}`);
      expect(r.body.digest).toMatch(/^sha256:/);
      const same = await call(base(), 'POST', '/v1/manifests', { token: admin, json: { source: manifestYaml('1.0.0', '1.0'), filename: 'cp-app.yaml' } });
      expect(same.status).toBe(200);
      expect(same.body.id).toBe(r.body.id);
      const shown = await call(base(), 'GET', '/v1/manifests/cp-app/1.0.0', { token: admin });
      expect(shown.body.spec.services.web.image).toBe(`${rig.registry}/${repo}@${v1.manifestDigest}`);
    });

    it('refuses other content under a published version, an unknown image and an invalid file', async () => {
      const conflict = await call(base(), 'POST', '/v1/manifests', { token: admin, text: manifestYaml('1.0.0', '1.1'), type: 'application/yaml' });
      expect(conflict.status).toBe(409);
      expect(conflict.body.error.code).toBe('manifest-conflict');
      const missing = await call(base(), 'POST', '/v1/manifests', { token: admin, text: manifestYaml('9.9.9', 'no-such-tag'), type: 'application/yaml' });
      expect(missing.status).toBe(422);
      expect(missing.body.error.code).toBe('unresolved-image');
      expect(missing.body.error.message).toContain('services.web.image');
      expect(missing.body.error.message).toContain(`${rig.registry}/${repo}:no-such-tag`);
      const invalid = await call(base(), 'POST', '/v1/manifests', { token: admin, text: 'name: cp-app\nversion: 2\nservices: {}\n', type: 'application/yaml' });
      expect(invalid.status).toBe(422);
      expect(invalid.body.error.code).toBe('invalid-manifest');
      expect(invalid.body.errors.length).toBeGreaterThan(0);
      expect((await call(base(), 'GET', '/v1/manifests/cp-app/9.9.9', { token: admin })).status).toBe(404);
    });

    it('refuses a body over the size limit with 413', async () => {
      const r = await call(base(), 'POST', '/v1/manifests', { token: admin, text: 'x'.repeat(2 << 20), type: 'application/yaml' });
      expect(r.status).toBe(413);
      expect(r.body.error.code).toBe('body-too-large');
    });

    it('lists and diffs versions', async () => {
      const r = await call(base(), 'POST', '/v1/manifests', { token: admin, text: manifestYaml('1.1.0', '1.1', '    environment:\n      MODE: fast\n'), type: 'application/yaml' });
      expect(r.status).toBe(201);
      const list = await call(base(), 'GET', '/v1/manifests?name=cp-app', { token: admin });
      expect(list.body.manifests.map((m: { version: string }) => m.version).sort()).toEqual(['1.0.0', '1.1.0']);
      const diff = await call(base(), 'GET', '/v1/manifests/cp-app/diff?from=1.0.0&to=1.1.0', { token: admin });
      expect(diff.body.services).toEqual([
        {
          service: 'web',
          change: 'changed',
          image: { from: `${rig.registry}/${repo}@${v1.manifestDigest}`, to: `${rig.registry}/${repo}@${v2.manifestDigest}` },
          fields: [{ field: 'environment', from: {}, to: { MODE: 'fast' } }],
        },
      ]);
    });
  });

  describe('desired state, pull tokens and reports', () => {
    let dev: { deviceId: string; token: string; jwks: { keys: object[] } };
    beforeAll(async () => {
      dev = await enroll(base(), devs[2]);
    });

    it('answers 204 before any assignment, then a long poll is woken by one', async () => {
      expect((await call(base(), 'GET', '/v1/device/desired', { token: dev.token })).status).toBe(204);
      const poll = call(base(), 'GET', '/v1/device/desired?wait=30', { token: dev.token });
      await new Promise((r) => setTimeout(r, 200));
      const assign = await call(base(), 'POST', `/v1/devices/${devs[2].serial}/assign`, { token: admin, json: { manifest: 'cp-app@1.0.0' } });
      expect(assign.body).toMatchObject({ release: 'cp-app@1.0.0', sequence: 1 });
      // The release reference follows the one grammar (common/grammar.ts): name@semantic-version.
      const loose = await call(base(), 'POST', `/v1/devices/${devs[2].serial}/assign`, { token: admin, json: { manifest: 'cp-app@1' } });
      expect([loose.status, loose.body.error.field, loose.body.error.message]).toEqual([400, 'manifest', 'body field manifest: expected a release like weather-station@1.4.0, got "cp-app@1": the version "1" must be a semantic version like 1.4.0']);
      const got = await poll;
      expect(got.status).toBe(200);
      expect(got.headers.get('etag')).toBe('"1"');
      const doc = await verifyDeployment(got.body.document, { keys: dev.jwks as never, device: dev.deviceId });
      expect(doc).toMatchObject({ sequence: 1, manifest: { name: 'cp-app', version: '1.0.0' } });
      expect(doc.spec.services.web.image).toBe(`${rig.registry}/${repo}@${v1.manifestDigest}`);
      expect(doc.exp - doc.iat).toBe(24 * 3600);
    });

    it('answers 304 to a current ETag, and the next assignment raises the sequence', async () => {
      const same = await call(base(), 'GET', '/v1/device/desired', { token: dev.token, headers: { 'if-none-match': '"1"' } });
      expect(same.status).toBe(304);
      await call(base(), 'POST', `/v1/devices/${devs[2].serial}/assign`, { token: admin, json: { manifest: 'cp-app@1.1.0' } });
      const next = await call(base(), 'GET', '/v1/device/desired?wait=5', { token: dev.token, headers: { 'if-none-match': '"1"' } });
      expect(next.status).toBe(200);
      expect(next.headers.get('etag')).toBe('"2"');
      // A wait that runs out unwoken answers what it read when it began (it reads nothing again).
      const quiet = await call(base(), 'GET', '/v1/device/desired?wait=1', { token: dev.token, headers: { 'if-none-match': '"2"' } });
      expect([quiet.status, quiet.headers.get('etag')]).toEqual([304, '"2"']);
    });

    it('issues a pull token for the desired and previous images that the proxy honours', async () => {
      const r = await call(base(), 'POST', '/v1/device/pull-token', { token: dev.token });
      expect(r.status).toBe(200);
      expect(r.body.registryProxy).toBe(proxyUrl);
      expect(jwtHeader(r.body.token).typ).toBe(TOKEN.pullTyp);
      const claims = jwtPayload(r.body.token);
      expect(claims.aud).toBe(TOKEN.pullAudience);
      expect(claims.access).toEqual([{ type: 'repository', name: `rig/${repo}`, actions: ['pull'], digests: [v1.manifestDigest, v2.manifestDigest].sort() }]);
      const ok = await fetch(`${proxyUrl}/v2/rig/${repo}/manifests/${v2.manifestDigest}`, { headers: { authorization: `Bearer ${r.body.token}`, accept: MANIFEST_ACCEPT } });
      expect(ok.status).toBe(200);
      const none = await fetch(`${proxyUrl}/v2/rig/${repo}/manifests/${v2.manifestDigest}`, { headers: { accept: MANIFEST_ACCEPT } });
      expect(none.status).toBe(401);
    });

    it('issues operator pull tokens on the Docker token endpoint (Basic, operator token as password)', async () => {
      const basic = Buffer.from(`anyone:${admin}`).toString('base64');
      const r = await call(base(), 'GET', `/v1/registry/token?service=berth-registry-proxy&scope=repository:rig/${repo}:pull`, { headers: { authorization: `Basic ${basic}` } });
      expect(r.status).toBe(200);
      expect(jwtPayload(r.body.access_token).access).toEqual([{ type: 'repository', name: `rig/${repo}`, actions: ['pull'] }]);
      expect((await call(base(), 'GET', '/v1/registry/token?scope=repository:x:pull')).status).toBe(401);
    });

    it('takes reports in sequence order only, validates them and keeps a bounded history', async () => {
      const events: { deviceId: string; previousPhase: string | null }[] = [];
      const off = cp.ctx.events.on('report', (e) => events.push({ deviceId: e.deviceId, previousPhase: e.previousPhase }));
      const report = (sequence: number, phase: string, extra: object = {}) => ({
        sequence,
        desiredSequence: 2,
        running: 'cp-app@1.1.0',
        phase,
        bytes: { done: 10, total: 10 },
        services: { web: { image: `${rig.registry}/${repo}@${v2.manifestDigest}`, status: 'running', health: 'healthy', restarts: 0 } },
        at: new Date().toISOString(),
        ...extra,
      });
      try {
        expect((await call(base(), 'POST', '/v1/device/report', { token: dev.token, json: report(10, 'downloading') })).body).toEqual({ accepted: true });
        const r = await call(base(), 'POST', '/v1/device/report', { token: dev.token, json: report(11, 'running') });
        expect(r.status).toBe(202);
        expect(r.body).toEqual({ accepted: true });
        expect((await call(base(), 'POST', '/v1/device/report', { token: dev.token, json: report(11, 'failed') })).body).toEqual({ accepted: false });
        expect((await call(base(), 'POST', '/v1/device/report', { token: dev.token, json: report(9, 'failed') })).body).toEqual({ accepted: false });
        const bad = await call(base(), 'POST', '/v1/device/report', { token: dev.token, json: report(12, 'exploded') });
        expect(bad.status).toBe(400);
        expect(bad.body.error.field).toBe('phase');
      } finally {
        off();
      }
      expect(events).toEqual([
        { deviceId: dev.deviceId, previousPhase: null },
        { deviceId: dev.deviceId, previousPhase: 'downloading' },
      ]);
      const twin = await call(base(), 'GET', `/v1/devices/${devs[2].serial}`, { token: admin });
      expect(twin.body).toMatchObject({ online: true, inSync: true, desired: { sequence: 2, release: 'cp-app@1.1.0' }, reported: { sequence: 11, phase: 'running' }, previousRelease: 'cp-app@1.0.0' });
      expect(twin.body.services.web.drift).toBe('in-sync');
      for (let s = 20; s < 28; s++) await call(base(), 'POST', '/v1/device/report', { token: dev.token, json: report(s, 'running') });
      const history = await call(base(), 'GET', `/v1/devices/${devs[2].serial}/history`, { token: admin });
      expect(history.body.reports.map((h: { sequence: number }) => h.sequence)).toEqual([23, 24, 25, 26, 27]);
    });

    it('keeps each device to its own state and shows drift', async () => {
      const other = await enroll(base(), devs[0]);
      await call(base(), 'POST', `/v1/devices/${devs[0].serial}/assign`, { token: admin, json: { manifest: 'cp-app@1.1.0' } });
      const before = await call(base(), 'GET', `/v1/devices/${devs[2].serial}`, { token: admin });
      const r = await call(base(), 'POST', '/v1/device/report', {
        token: other.token,
        json: { sequence: 1, desiredSequence: 1, running: 'cp-app@1.0.0', phase: 'running', bytes: { done: 0, total: 0 }, services: { web: { image: `${rig.registry}/${repo}@${v1.manifestDigest}`, status: 'running', health: 'none', restarts: 0 } }, at: new Date().toISOString() },
      });
      expect(r.body).toEqual({ accepted: true });
      const after = await call(base(), 'GET', `/v1/devices/${devs[2].serial}`, { token: admin });
      expect(after.body.reported).toEqual(before.body.reported);
      const twin = await call(base(), 'GET', `/v1/devices/${devs[0].serial}`, { token: admin });
      expect(twin.body.inSync).toBe(false);
      expect(twin.body.services.web.drift).toBe('image-differs');
      clockOffsetMs += 3 * 60_000;
      try {
        expect((await call(base(), 'GET', `/v1/devices/${devs[0].serial}`, { token: admin })).body.online).toBe(false);
      } finally {
        clockOffsetMs -= 3 * 60_000;
      }
    });

    it('wakes a long poll for an assignment made by another process sharing the database', async () => {
      const { client } = await openDatabase(db);
      try {
        const current = (await call(base(), 'GET', '/v1/device/desired', { token: dev.token })).headers.get('etag') as string;
        // The poll waits up to 60 s; being answered within 20 s proves the change feed woke it, not the deadline.
        const poll = call(base(), 'GET', '/v1/device/desired?wait=60', { token: dev.token, headers: { 'if-none-match': current }, signal: AbortSignal.timeout(20_000) });
        await new Promise((r) => setTimeout(r, 200));
        // What another control plane's assignment writes: the change and its feed row, in one transaction.
        await client.batch(
          [
            { sql: `UPDATE desired SET manifest_id = previous_manifest_id, previous_manifest_id = manifest_id, sequence = sequence + 1, issued_at = ? WHERE device_id = ?`, args: [Date.now(), dev.deviceId] },
            { sql: 'INSERT INTO desired_changes (device_id, at) VALUES (?, ?)', args: [dev.deviceId, Date.now()] },
          ],
          'write',
        );
        const got = await poll;
        expect(got.status).toBe(200);
        expect(got.headers.get('etag')).toBe(`"${Number(JSON.parse(current)) + 1}"`);
        // Put it back the same way so the next test starts from cp-app@1.1.0 with a higher sequence.
        await client.execute({
          sql: `UPDATE desired SET manifest_id = previous_manifest_id, previous_manifest_id = manifest_id, sequence = sequence + 1, issued_at = ? WHERE device_id = ?`,
          args: [Date.now(), dev.deviceId],
        });
      } finally {
        client.close();
      }
    });

    it('shows a device that only polls as online', async () => {
      const e = await enroll(base(), devs[3]);
      expect((await call(base(), 'GET', `/v1/devices/${devs[3].serial}`, { token: admin })).body).toMatchObject({ online: false, lastSeenAt: null });
      expect((await call(base(), 'GET', '/v1/device/desired', { token: e.token })).status).toBe(204);
      const twin = await call(base(), 'GET', `/v1/devices/${devs[3].serial}`, { token: admin });
      expect(twin.body.online).toBe(true);
      expect(twin.body.lastSeenAt).not.toBeNull();
      const list = await call(base(), 'GET', '/v1/devices?selector=site%3Dparis', { token: admin });
      expect(list.body.devices).toMatchObject([{ serial: devs[3].serial, online: true }]);
    });

    it('rolls a device back to its previous release with a higher sequence', async () => {
      const r = await call(base(), 'POST', `/v1/devices/${devs[2].serial}/rollback`, { token: admin });
      expect(r.body).toMatchObject({ release: 'cp-app@1.0.0', sequence: 5 });
      const got = await call(base(), 'GET', '/v1/device/desired', { token: dev.token, headers: { 'if-none-match': '"4"' } });
      expect(got.headers.get('etag')).toBe('"5"');
      const doc = await verifyDeployment(got.body.document, { keys: dev.jwks as never, device: dev.deviceId, lastSequence: 4 });
      expect(doc.manifest.version).toBe('1.0.0');
    });
  });

  it('keeps its signing key, admin token and data across a restart on the same database', async () => {
    const jwksBefore = (await call(base(), 'GET', '/.well-known/jwks.json')).body;
    const devicesBefore = (await call(base(), 'GET', '/v1/devices', { token: admin })).body;
    // A long poll waiting at shutdown is answered (304), not cut.
    const e = await enroll(base(), devs[0]);
    const current = (await call(base(), 'GET', '/v1/device/desired', { token: e.token })).headers.get('etag') as string;
    const poll = call(base(), 'GET', '/v1/device/desired?wait=60', { token: e.token, headers: { 'if-none-match': current } });
    await new Promise((r) => setTimeout(r, 200));
    await cp.close();
    expect((await poll).status).toBe(304);
    // Sightings still in memory were written at shutdown.
    const { client } = await openDatabase(db);
    try {
      const row = await client.execute({ sql: 'SELECT s.last_seen_at FROM devices d JOIN device_sightings s ON s.device_id = d.id WHERE d.serial = ?', args: [devs[3].serial] });
      expect(row.rows[0]?.last_seen_at ?? null).not.toBeNull();
    } finally {
      client.close();
    }
    cp = await start();
    expect(cp.adminToken).toBe(admin);
    expect((await call(base(), 'GET', '/.well-known/jwks.json')).body).toEqual(jwksBefore);
    const devicesAfter = (await call(base(), 'GET', '/v1/devices', { token: admin })).body;
    expect(devicesAfter.devices.map((d: { serial: string; status: string }) => [d.serial, d.status])).toEqual(devicesBefore.devices.map((d: { serial: string; status: string }) => [d.serial, d.status]));
  });

  it('rotates the signing key and keeps the old one in the JWKS', async () => {
    const before = (await call(base(), 'GET', '/.well-known/jwks.json')).body.keys.map((k: { kid: string }) => k.kid);
    const r = await call(base(), 'POST', '/v1/keys/rotate', { token: admin });
    expect(r.status).toBe(200);
    const after = (await call(base(), 'GET', '/.well-known/jwks.json')).body.keys.map((k: { kid: string }) => k.kid);
    expect(after).toEqual(expect.arrayContaining([...before, r.body.kid]));
    const e = await enroll(base(), devs[0]);
    expect(jwtHeader(e.token).kid).toBe(r.body.kid);
  });
});
