import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256Digest } from '../../common/digest.js';
import { createLogger } from '../../common/log.js';
import { MEDIA } from '../../common/oci.js';
import { PullStreamReader } from '../../edge-daemon/download/engine.js';
import { startHandoverRegistry, type HandoverRegistry, type HandoverSource } from '../../edge-daemon/download/local-registry.js';

const log = createLogger('test', { level: 'silent' });

describe('handover registry (real HTTP on loopback)', () => {
  const manifest = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{},"layers":[]}');
  const manifestDigest = sha256Digest(manifest);
  const blob = Buffer.from('layer bytes, 0123456789');
  const blobDigest = sha256Digest(blob);
  const dir = mkdtempSync(join(tmpdir(), 'berth-handover-unit-'));
  writeFileSync(join(dir, 'blob'), blob);
  const source: HandoverSource = {
    manifest: async (d) => (d === manifestDigest ? { bytes: manifest, mediaType: MEDIA.dockerManifest } : undefined),
    blob: async (d) => (d === blobDigest ? { path: join(dir, 'blob'), size: blob.length } : undefined),
  };
  let registry: HandoverRegistry;
  const get = (r: HandoverRegistry, path: string, init?: RequestInit): Promise<Response> => fetch(`http://${r.host}${path}`, init);
  const app = { request: (path: string, init?: RequestInit) => get(registry, path, init) };
  beforeAll(async () => {
    registry = await startHandoverRegistry(source, log);
  });
  afterAll(async () => {
    await registry.close();
  });

  it('listens on loopback only', () => {
    expect(registry.host).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('answers the version check', async () => {
    const res = await app.request('/v2/');
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
  });

  it('serves a manifest by digest with its exact bytes and media type', async () => {
    const res = await app.request(`/v2/dev1/app/web/manifests/${manifestDigest}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(MEDIA.dockerManifest);
    expect(res.headers.get('docker-content-digest')).toBe(manifestDigest);
    expect(Buffer.from(await res.arrayBuffer()).equals(manifest)).toBe(true);
  });

  it('serves no tags, only digests', async () => {
    const res = await app.request('/v2/dev1/app/web/manifests/latest');
    expect(res.status).toBe(404);
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0].code).toBe('MANIFEST_UNKNOWN');
  });

  it('serves blobs with ranges, and 404 for unknown ones', async () => {
    const res = await app.request(`/v2/dev1/app/web/blobs/${blobDigest}`, { headers: { Range: 'bytes=6-' } });
    expect(res.status).toBe(206);
    expect(await res.text()).toBe(blob.subarray(6).toString());
    const missing = await app.request(`/v2/dev1/app/web/blobs/${sha256Digest('other')}`);
    expect(missing.status).toBe(404);
  });

  it('turns a failed on-demand fetch into a 502 naming the blob', async () => {
    const failing = await startHandoverRegistry({ ...source, blob: async () => Promise.reject(new Error('proxy down')) }, log);
    try {
      const res = await get(failing, `/v2/dev1/app/web/blobs/${blobDigest}`);
      expect(res.status).toBe(502);
      expect(await res.text()).toContain('proxy down');
    } finally {
      await failing.close();
    }
  });

  it('is read-only: other methods are refused', async () => {
    const res = await app.request(`/v2/dev1/app/web/blobs/${blobDigest}`, { method: 'DELETE' });
    expect(res.status).toBe(405);
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0].code).toBe('UNSUPPORTED');
  });
});

describe('PullStreamReader', () => {
  it('finds an error line split across chunks after progress lines', () => {
    const r = new PullStreamReader();
    r.feed('{"status":"Pulling from dev1/app","id":"sha256:ab"}\n{"status":"Downloading","progressDetail":{"current":1}}\n{"errorDetail":{"message":"manifest un');
    r.feed('known"},"error":"manifest unknown"}\n');
    r.end();
    expect(r.failure).toBe('manifest unknown');
    expect(r.statuses).toEqual([{ id: 'sha256:ab', status: 'Pulling from dev1/app' }]);
  });
  it('reports no failure for a clean stream without a trailing newline', () => {
    const r = new PullStreamReader();
    r.feed('{"status":"Already exists","id":"a1"}\n{"status":"Digest: sha256:00"}');
    r.end();
    expect(r.failure).toBeUndefined();
    expect(r.statuses.map((s) => s.status)).toEqual(['Already exists', 'Digest: sha256:00']);
  });
});
