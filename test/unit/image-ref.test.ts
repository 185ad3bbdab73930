import { describe, expect, it } from 'vitest';
import { formatImageRef, ImageRefError, parseImageRef, pinImageRef, proxyRepository, upstreamHost } from '../../manifests/image-ref.js';

const D = 'sha256:' + 'e'.repeat(64);

describe('parseImageRef', () => {
  it.each([
    ['busybox', { registry: 'docker.io', repository: 'library/busybox', tag: 'latest', digest: undefined }],
    ['busybox:1.36', { registry: 'docker.io', repository: 'library/busybox', tag: '1.36', digest: undefined }],
    ['acme/app:2', { registry: 'docker.io', repository: 'acme/app', tag: '2', digest: undefined }],
    ['index.docker.io/busybox', { registry: 'docker.io', repository: 'library/busybox', tag: 'latest', digest: undefined }],
    ['registry-1.docker.io/acme/app', { registry: 'docker.io', repository: 'acme/app', tag: 'latest', digest: undefined }],
    ['registry.example.com/acme/collector:1.4.0', { registry: 'registry.example.com', repository: 'acme/collector', tag: '1.4.0', digest: undefined }],
    ['127.0.0.1:5000/acme/app:v1', { registry: '127.0.0.1:5000', repository: 'acme/app', tag: 'v1', digest: undefined }],
    ['localhost/app', { registry: 'localhost', repository: 'app', tag: 'latest', digest: undefined }],
    ['localhost:5000/a/b/c', { registry: 'localhost:5000', repository: 'a/b/c', tag: 'latest', digest: undefined }],
    [`registry.example.com/acme/app@${D}`, { registry: 'registry.example.com', repository: 'acme/app', tag: undefined, digest: D }],
    [`registry.example.com:8443/acme/app:1.0@${D}`, { registry: 'registry.example.com:8443', repository: 'acme/app', tag: '1.0', digest: D }],
    ['registry.example.com/my_org/my-app.v2__x:1', { registry: 'registry.example.com', repository: 'my_org/my-app.v2__x', tag: '1', digest: undefined }],
  ])('%s', (ref, want) => expect(parseImageRef(ref)).toEqual(want));

  it.each([
    ['', /empty/],
    ['registry.example.com/Acme/app', /lowercase/],
    ['registry.example.com/acme/app@sha256:abc', /digest must be/],
    [`registry.example.com/acme/app@sha512:${'e'.repeat(128)}`, /digest must be/],
    [`registry.example.com/acme/app@sha256:${'E'.repeat(64)}`, /digest must be/],
    ['registry.example.com/acme/app:-bad', /bad tag/],
    ['registry.example.com/acme//app', /components/],
    ['registry.example.com/acme/app-', /components/],
  ])('refuses %j', (ref, why) => {
    expect(() => parseImageRef(ref)).toThrow(ImageRefError);
    expect(() => parseImageRef(ref)).toThrow(why);
  });
});

describe('formatting and pinning', () => {
  it('round-trips the normalized form', () => {
    expect(formatImageRef(parseImageRef('busybox'))).toBe('docker.io/library/busybox:latest');
    expect(formatImageRef(parseImageRef(`127.0.0.1:5000/a:1@${D}`))).toBe(`127.0.0.1:5000/a@${D}`);
  });
  it('pins to repo@digest, dropping the tag', () => {
    expect(pinImageRef('registry.example.com/acme/app:1.4.0', D)).toBe(`registry.example.com/acme/app@${D}`);
    expect(pinImageRef('busybox:1.36', D)).toBe(`docker.io/library/busybox@${D}`);
  });
});

describe('proxyRepository', () => {
  const upstreams = [
    { alias: 'acme', url: 'https://registry.example.com' },
    { alias: 'hub', url: 'https://registry-1.docker.io' },
    { alias: 'local', url: 'http://127.0.0.1:5000' },
  ];
  it('maps a reference to ALIAS/REPO by its registry', () => {
    expect(proxyRepository('registry.example.com/acme/app:1', upstreams)).toEqual({ alias: 'acme', repository: 'acme/acme/app' });
    expect(proxyRepository('busybox', upstreams)).toEqual({ alias: 'hub', repository: 'hub/library/busybox' });
    expect(proxyRepository('127.0.0.1:5000/x/y', upstreams)).toEqual({ alias: 'local', repository: 'local/x/y' });
  });
  it('names the registry it does not mirror', () => {
    expect(() => proxyRepository('other.example.com/a', upstreams)).toThrow(/registry other\.example\.com is not mirrored.*acme=registry\.example\.com/);
  });
  it('normalizes Docker Hub upstream hosts', () => {
    expect(upstreamHost('https://index.docker.io')).toBe('docker.io');
    expect(upstreamHost('http://127.0.0.1:5000/')).toBe('127.0.0.1:5000');
  });
});
