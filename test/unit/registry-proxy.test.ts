import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseRange, planBlob } from '../../common/blob-http.js';
import { MEDIA, type ParsedManifest } from '../../common/oci.js';
import { authorize, reachOf, scopeFor, type Grant } from '../../registry-proxy/access.js';
import { loadCredentials, parseUpstreams, upstreamRepository } from '../../registry-proxy/config.js';
import { OciError } from '../../registry-proxy/errors.js';
import { chooseEvictions } from '../../registry-proxy/eviction.js';
import { createServiceRegistry } from '../../common/metrics.js';
import { createProxyMetrics } from '../../registry-proxy/metrics.js';
import { parseV2Path } from '../../registry-proxy/names.js';
import { acceptsManifest } from '../../registry-proxy/server.js';
import { parseProxyImage, selectChildren } from '../../registry-proxy/warm.js';
import { parseChallenge } from '../../registry-proxy/www-auth.js';
import { service } from '../../registry-proxy/index.js';
import { chunkSizeFor } from '../../common/blob-http.js';

const d = (c: string): string => `sha256:${c.repeat(64)}`;

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof OciError ? err.code : `not an OciError: ${(err as Error).message}`;
  }
  return 'no error';
}

describe('parseV2Path', () => {
  it('splits manifests, blobs and tags with multi-part names', () => {
    expect(parseV2Path('/v2/')).toEqual({ kind: 'base' });
    expect(parseV2Path('/v2/up/acme/app/manifests/1.0')).toEqual({ kind: 'manifest', name: 'up/acme/app', reference: '1.0', byDigest: false });
    expect(parseV2Path(`/v2/up/app/manifests/${d('a')}`)).toEqual({ kind: 'manifest', name: 'up/app', reference: d('a'), byDigest: true });
    expect(parseV2Path(`/v2/up/app/blobs/${d('b')}?x=1`)).toEqual({ kind: 'blob', name: 'up/app', digest: d('b') });
    expect(parseV2Path('/v2/up/app/tags/list')).toEqual({ kind: 'tags', name: 'up/app' });
    expect(parseV2Path('/healthz')).toBeNull();
  });

  it('refuses traversal, escapes, bad names and bad digests', () => {
    expect(codeOf(() => parseV2Path('/v2/up/../etc/manifests/x'))).toBe('NAME_INVALID');
    expect(codeOf(() => parseV2Path('/v2/up/./app/manifests/x'))).toBe('NAME_INVALID');
    expect(codeOf(() => parseV2Path('/v2/up/%2e%2e/manifests/x'))).toBe('NAME_INVALID');
    expect(codeOf(() => parseV2Path('/v2/up/App/manifests/x'))).toBe('NAME_INVALID');
    expect(codeOf(() => parseV2Path('/v2/up//app/manifests/x'))).toBe('NAME_INVALID');
    expect(codeOf(() => parseV2Path('/v2/manifests/x'))).toBe('NAME_INVALID');
    expect(codeOf(() => parseV2Path('/v2/up/app/blobs/sha256:ABC'))).toBe('DIGEST_INVALID');
    expect(codeOf(() => parseV2Path(`/v2/up/app/manifests/sha512:${'a'.repeat(128)}`))).toBe('DIGEST_INVALID');
    expect(codeOf(() => parseV2Path('/v2/up/app/manifests/-bad'))).toBe('MANIFEST_INVALID');
    expect(codeOf(() => parseV2Path('/v2/up/app/blobs/uploads/'))).toBe('UNSUPPORTED');
  });
});

describe('parseRange and planBlob', () => {
  it('handles ranges, open ends, suffixes and out-of-range requests', () => {
    expect(parseRange('bytes=0-9', 100)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=90-', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=90-500', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-10', 100)).toEqual({ start: 90, end: 99 });
    expect(parseRange('bytes=-1000', 100)).toEqual({ start: 0, end: 99 });
    expect(parseRange('bytes=100-', 100)).toBe('unsatisfiable');
    expect(parseRange('bytes=-0', 100)).toBe('unsatisfiable');
    expect(parseRange('bytes=5-3', 100)).toBeNull();
    expect(parseRange('bytes=0-1,5-6', 100)).toBeNull();
    expect(parseRange('items=0-1', 100)).toBeNull();
    expect(parseRange('bytes=99999999999999999999-', 100)).toBeNull();
  });

  it('plans 200, 206, 416 and If-Range answers', () => {
    const blob = { size: 100, digest: d('c') };
    expect(planBlob({ method: 'GET' }, blob)).toMatchObject({ status: 200, body: { start: 0, end: 99 }, headers: { 'Content-Length': '100', ETag: `"${d('c')}"` } });
    expect(planBlob({ method: 'GET', range: 'bytes=10-19' }, blob)).toMatchObject({ status: 206, body: { start: 10, end: 19 }, headers: { 'Content-Range': 'bytes 10-19/100', 'Content-Length': '10' } });
    expect(planBlob({ method: 'GET', range: 'bytes=200-' }, blob)).toMatchObject({ status: 416, body: null, headers: { 'Content-Range': 'bytes */100' } });
    expect(planBlob({ method: 'GET', range: 'bytes=10-', ifRange: `"${d('c')}"` }, blob).status).toBe(206);
    expect(planBlob({ method: 'GET', range: 'bytes=10-', ifRange: `"${d('e')}"` }, blob).status).toBe(200);
    expect(planBlob({ method: 'HEAD', range: 'bytes=10-' }, blob)).toMatchObject({ status: 206, body: null });
    expect(planBlob({ method: 'GET' }, { size: 0, digest: d('c') })).toMatchObject({ status: 200, body: null, headers: { 'Content-Length': '0' } });
  });
});

describe('chooseEvictions', () => {
  const entries = [
    { key: 'old', size: 40, lastUsed: 1 },
    { key: 'mid', size: 40, lastUsed: 2 },
    { key: 'new', size: 40, lastUsed: 3 },
  ];
  it('evicts least recently used first, down to the limit', () => {
    expect(chooseEvictions(entries, 120, () => false)).toEqual([]);
    expect(chooseEvictions(entries, 100, () => false)).toEqual(['old']);
    expect(chooseEvictions(entries, 50, () => false)).toEqual(['old', 'mid']);
  });
  it('never evicts a pinned blob, even if the cache stays over its limit', () => {
    expect(chooseEvictions(entries, 50, (k) => k === 'old')).toEqual(['mid', 'new']);
    expect(chooseEvictions(entries, 0, () => true)).toEqual([]);
  });
});

describe('parseChallenge', () => {
  it('reads bearer and basic challenges with quoted parameters', () => {
    expect(parseChallenge('Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.example.com/token', service: 'registry.example.com', scope: 'repository:a/b:pull,push' },
    });
    expect(parseChallenge('Basic realm="x"')).toEqual({ scheme: 'basic', params: { realm: 'x' } });
    expect(parseChallenge(null)).toBeNull();
  });
});

describe('pull access decisions', () => {
  const index = d('1');
  const child = d('2');
  const config = d('3');
  const layer = d('4');
  const other = d('5');
  const manifests: Record<string, ParsedManifest> = {
    [index]: { kind: 'index', mediaType: MEDIA.ociIndex, manifests: [{ mediaType: MEDIA.ociManifest, digest: child, size: 1 }] },
    [child]: { kind: 'image', mediaType: MEDIA.ociManifest, config: { mediaType: MEDIA.ociConfig, digest: config, size: 1 }, layers: [{ mediaType: MEDIA.ociLayerGzip, digest: layer, size: 1 }] },
  };
  const load = async (_name: string, digest: string): Promise<ParsedManifest> => {
    const m = manifests[digest];
    if (!m) throw new Error(`no manifest ${digest}`);
    return m;
  };
  const reach = (name: string, digests: string[]) => reachOf(name, digests, load);
  const device: Grant = { kind: 'token', subject: 'device-1', access: [{ type: 'repository', name: 'up/app', actions: ['pull'], digests: [index] }] };
  const operator: Grant = { kind: 'token', subject: 'ops', access: [{ type: 'repository', name: 'up/app', actions: ['pull'] }] };
  const deny = async (grant: Grant, want: Parameters<typeof authorize>[1]): Promise<string> =>
    authorize(grant, want, reach).then(() => 'allowed', (err: OciError) => err.code);

  it('scopes a token to its repositories and digests', () => {
    expect(scopeFor(device.kind === 'token' ? device.access : [], 'up/app')).toEqual([index]);
    expect(scopeFor(operator.kind === 'token' ? operator.access : [], 'up/app')).toBe('all');
    expect(scopeFor([{ type: 'repository', name: 'up/app', actions: ['push'] }], 'up/app')).toBeNull();
  });

  it('allows a device what its desired manifests reference, through an index, and nothing else', async () => {
    expect(await deny(device, { kind: 'manifest', name: 'up/app', reference: index, byDigest: true })).toBe('allowed');
    expect(await deny(device, { kind: 'manifest', name: 'up/app', reference: child, byDigest: true })).toBe('allowed');
    expect(await deny(device, { kind: 'blob', name: 'up/app', digest: config })).toBe('allowed');
    expect(await deny(device, { kind: 'blob', name: 'up/app', digest: layer })).toBe('allowed');
    expect(await deny(device, { kind: 'blob', name: 'up/app', digest: other })).toBe('DENIED');
    expect(await deny(device, { kind: 'manifest', name: 'up/app', reference: other, byDigest: true })).toBe('DENIED');
    expect(await deny(device, { kind: 'manifest', name: 'up/app', reference: 'latest', byDigest: false })).toBe('DENIED');
    expect(await deny(device, { kind: 'tags', name: 'up/app' })).toBe('DENIED');
    expect(await deny(device, { kind: 'blob', name: 'up/other', digest: layer })).toBe('DENIED');
    expect(await deny(operator, { kind: 'manifest', name: 'up/app', reference: 'latest', byDigest: false })).toBe('allowed');
    expect(await deny({ kind: 'anonymous' }, { kind: 'blob', name: 'up/other', digest: other })).toBe('allowed');
  });
});

describe('configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-proxy-unit-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('parses upstreams and refuses credentials in URLs, bad aliases and duplicates', () => {
    expect(parseUpstreams(['hub=https://registry-1.docker.io/', 'lab=http://127.0.0.1:5000'])).toEqual([
      { alias: 'hub', url: 'https://registry-1.docker.io' },
      { alias: 'lab', url: 'http://127.0.0.1:5000' },
    ]);
    expect(() => parseUpstreams(['lab=http://u:p@127.0.0.1:5000'])).toThrow(/credentials do not belong in the URL/);
    expect(() => parseUpstreams(['Lab=http://127.0.0.1:5000'])).toThrow(/alias/);
    expect(() => parseUpstreams(['lab=ftp://x'])).toThrow(/http or https/);
    expect(() => parseUpstreams(['a=http://x', 'a=http://y'])).toThrow(/twice/);
  });

  it('maps one-part Docker Hub names to library/', () => {
    expect(upstreamRepository({ alias: 'hub', url: 'https://registry-1.docker.io' }, 'busybox')).toBe('library/busybox');
    expect(upstreamRepository({ alias: 'hub', url: 'https://registry-1.docker.io' }, 'acme/app')).toBe('acme/app');
    expect(upstreamRepository({ alias: 'lab', url: 'http://127.0.0.1:5000' }, 'busybox')).toBe('busybox');
  });

  it('loads credentials from a 0600 file or the environment and refuses a readable file', () => {
    const ups = parseUpstreams(['lab=http://127.0.0.1:5000', 'hub=https://registry.example.com']);
    const file = join(dir, 'creds.json');
    writeFileSync(file, JSON.stringify({ lab: { username: 'u', password: 'p' }, hub: { token: 't' } }), { mode: 0o600 });
    expect(loadCredentials(ups, file, {}).map((u) => u.credentials)).toEqual([{ username: 'u', password: 'p' }, { token: 't' }]);
    expect(loadCredentials(ups, file, { BERTH_PROXY_CREDENTIALS_LAB: 'env:se:cret' })[0].credentials).toEqual({ username: 'env', password: 'se:cret' });
    chmodSync(file, 0o644);
    expect(() => loadCredentials(ups, file, {})).toThrow(/must be 0600/);
  });
});

describe('small helpers', () => {
  it('negotiates manifest media types like a registry', () => {
    expect(acceptsManifest(undefined, MEDIA.ociManifest)).toBe(true);
    expect(acceptsManifest('application/json', MEDIA.ociManifest)).toBe(true);
    expect(acceptsManifest(`${MEDIA.dockerManifest}, ${MEDIA.ociManifest}`, MEDIA.ociManifest)).toBe(true);
    expect(acceptsManifest(MEDIA.dockerManifest, MEDIA.ociIndex)).toBe(false);
  });

  it('parses warm images and picks platforms', () => {
    expect(parseProxyImage('lab/acme/app:1.0')).toEqual({ name: 'lab/acme/app', reference: '1.0', byDigest: false });
    expect(parseProxyImage(`lab/app@${d('a')}`)).toEqual({ name: 'lab/app', reference: d('a'), byDigest: true });
    expect(parseProxyImage('lab/app')).toEqual({ name: 'lab/app', reference: 'latest', byDigest: false });
    const kids = [
      { mediaType: MEDIA.ociManifest, digest: d('a'), size: 1, platform: { os: 'linux', architecture: 'amd64' } },
      { mediaType: MEDIA.ociManifest, digest: d('b'), size: 1, platform: { os: 'linux', architecture: 'arm64' } },
    ];
    expect(selectChildren(kids, 'linux/arm64').map((k) => k.digest)).toEqual([d('b')]);
    expect(selectChildren(kids, undefined)).toHaveLength(2);
  });

  it('renders Prometheus text with labels escaped, its gauges read at scrape time and the default process metrics', async () => {
    const m = createProxyMetrics(createServiceRegistry());
    m.inc('berth_proxy_upstream_errors_total', { upstream: 'a"b', reason: 'x' }, 2);
    let size = 42;
    m.gauge('berth_proxy_cache_size_bytes', () => size);
    const { body: text, contentType } = await m.render();
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(text).toContain('berth_proxy_upstream_errors_total{upstream="a\\"b",reason="x"} 2');
    expect(text).toContain('berth_proxy_cache_size_bytes 42');
    expect(text).toContain('# TYPE berth_proxy_served_bytes_total counter');
    expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d/m);
    size = 43;
    expect((await m.render()).body).toContain('berth_proxy_cache_size_bytes 43');
    expect(await m.value('berth_proxy_upstream_errors_total', { reason: 'x', upstream: 'a"b' })).toBe(2);
    expect(await m.value('berth_proxy_upstream_errors_total', { reason: 'y', upstream: 'a"b' })).toBe(0);
    expect(await m.value('berth_proxy_cache_size_bytes')).toBe(43);
  });

  it('refuses a label set that does not match the declaration', () => {
    const m = createProxyMetrics(createServiceRegistry());
    expect(() => m.inc('berth_proxy_requests_total', { rute: 'base', status: '200' })).toThrow(/rute/);
  });

  it('keeps two proxies in one process apart (one registry each)', async () => {
    const a = createProxyMetrics(createServiceRegistry());
    const b = createProxyMetrics(createServiceRegistry());
    a.inc('berth_proxy_cache_hit_bytes_total', {}, 5);
    expect(await a.value('berth_proxy_cache_hit_bytes_total')).toBe(5);
    expect(await b.value('berth_proxy_cache_hit_bytes_total')).toBe(0);
  });
});

describe('the service entry', () => {
  it('refuses to start without a cache directory, an upstream or an auth mode, and a bad number, naming the flag', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-proxy-cli-'));
    try {
      const refusal = async (flags: Record<string, string | string[] | boolean | undefined>) => {
        try {
          await service.configure({ listen: '127.0.0.1:7601', 'tag-ttl-seconds': '30', ...flags }, []);
          return 'accepted';
        } catch (err) {
          return (err as Error).message;
        }
      };
      const up = ['lab=http://127.0.0.1:5000'];
      expect(await refusal({ upstream: up })).toMatch(/--cache-dir/);
      expect(await refusal({ 'cache-dir': dir, anonymous: true })).toMatch(/--upstream/);
      expect(await refusal({ 'cache-dir': dir, upstream: up })).toMatch(/--control-plane URL is required unless --anonymous/);
      expect(await refusal({ 'cache-dir': dir, anonymous: true, 'cache-max-bytes': 'lots', upstream: up })).toMatch(/--cache-max-bytes/);
      expect(await refusal({ 'cache-dir': dir, anonymous: true, upstream: up, listen: '7601' })).toMatch(/--listen/);
      expect(await refusal({ 'cache-dir': dir, anonymous: true, upstream: up })).toBe('accepted');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('chunkSizeFor', () => {
  it('reads 1 MiB for few clients and shares a budget among many', () => {
    expect(chunkSizeFor(1)).toBe(1 << 20);
    expect(chunkSizeFor(4)).toBe(1 << 20);
    expect(chunkSizeFor(16)).toBe(256 << 10);
    expect(chunkSizeFor(32)).toBe(128 << 10);
    expect(chunkSizeFor(32, 16 << 20)).toBe(256 << 10);
    expect(chunkSizeFor(10_000, 16 << 20)).toBe(128 << 10);
  });
});
