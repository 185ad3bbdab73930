import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalDigest, canonicalJson } from '../../manifests/canonical.js';
import { manifestDigest, parseManifest } from '../../manifests/parse.js';
import type { Manifest } from '../../manifests/model.js';

function parsed(text: string): Manifest {
  const r = parseManifest(text, 'm.yaml');
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.manifest;
}

describe('canonicalJson', () => {
  it('sorts keys at every depth, drops undefined members, keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, 1, { z: true, y: null }], c: undefined } })).toBe('{"a":{"d":[3,1,{"y":null,"z":true}]},"b":1}');
  });
  it('is byte-identical whatever the insertion order', () => {
    const one = { name: 'x', services: { b: { image: 'i', env: { Z: '1', A: '2' } }, a: { image: 'j' } } };
    const two = { services: { a: { image: 'j' }, b: { env: { A: '2', Z: '1' }, image: 'i' } }, name: 'x' };
    expect(canonicalJson(one)).toBe(canonicalJson(two));
    expect(canonicalDigest(one)).toBe(canonicalDigest(two));
  });
  it('sorts by code unit, not locale', () => {
    expect(canonicalJson({ b: 0, B: 0, a: 0, é: 0, _: 0 })).toBe('{"B":0,"_":0,"a":0,"b":0,"é":0}');
  });
  it('refuses values JSON cannot carry faithfully', () => {
    expect(() => canonicalJson({ n: Number.NaN })).toThrow(/non-finite/);
    expect(() => canonicalJson({ n: Infinity })).toThrow(/non-finite/);
    expect(() => canonicalJson({ f: () => 1 })).toThrow(/unsupported/);
  });
  it('digests the canonical bytes with sha256', () => {
    const v = { b: [1, 2], a: 'x' };
    expect(canonicalDigest(v)).toBe('sha256:' + createHash('sha256').update('{"a":"x","b":[1,2]}').digest('hex'));
  });
});

describe('manifest digest', () => {
  const long = `
name: app
version: 1.0.0
services:
  web:
    image: registry.example.com/acme/web:1.0
    command: ["/bin/web", "--port", "8080"]
    environment: { PORT: "8080", MODE: prod }
    labels: { tier: edge }
    networks: { default: { aliases: [] } }
    restart: "no"
    volumes:
      - { type: volume, source: data, target: /data, read_only: false }
    healthcheck: { test: ["CMD-SHELL", "wget -q -O- http://127.0.0.1:8080/"], interval: 90s, timeout: 30s, retries: 3, start_period: 0s }
    deploy: { resources: { limits: { memory: 134217728, cpus: 0.5 } } }
    depends_on: { db: { condition: service_started } }
  db:
    image: registry.example.com/acme/db:1.0
volumes: { data: {} }
x-berth: { update: { strategy: download-then-swap, health_timeout: 1m } }
`;
  const short = `
x-berth: { update: { health_timeout: 60s } }
volumes: { data: }
services:
  db: { image: registry.example.com/acme/db:1.0 }
  web:
    depends_on: [db]
    mem_limit: 128M
    cpus: "0.5"
    healthcheck: { test: "wget -q -O- http://127.0.0.1:8080/", interval: 1m30s }
    volumes: ["data:/data"]
    labels: [tier=edge]
    environment: [MODE=prod, PORT=8080]
    command: /bin/web --port 8080
    image: registry.example.com/acme/web:1.0
version: 1.0.0
name: app
`;
  it('is the same for short and long forms of one file, in any key order', () => {
    const a = parsed(long);
    const b = parsed(short);
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(manifestDigest(a)).toBe(manifestDigest(b));
  });
  it('is the same for the JSON spelling of the file', () => {
    const json = JSON.stringify({ name: 'app', version: '1.0.0', services: { db: { image: 'registry.example.com/acme/db:1.0' } } });
    const yaml = 'name: app\nversion: 1.0.0\nservices:\n  db:\n    image: registry.example.com/acme/db:1.0\n';
    expect(manifestDigest(parsed(json))).toBe(manifestDigest(parsed(yaml)));
  });
  it('changes when anything meaningful changes', () => {
    const base = manifestDigest(parsed(short));
    expect(manifestDigest(parsed(short.replace('128M', '129M')))).not.toBe(base);
    expect(manifestDigest(parsed(short.replace('version: 1.0.0', 'version: 1.0.1')))).not.toBe(base);
    expect(manifestDigest(parsed(short.replace('MODE=prod, PORT=8080', 'PORT=8080, MODE=dev')))).not.toBe(base);
  });
  it('is stable across runs (the same input gives the same bytes)', () => {
    const digests = new Set(Array.from({ length: 5 }, () => manifestDigest(parsed(long))));
    expect(digests.size).toBe(1);
    expect([...digests][0]).toMatch(/^sha256:[a-f0-9]{64}$/);
  });
});
