import { describe, expect, it } from 'vitest';
import { encodeHeader } from '../../common/delta/format.js';
import type { DeltaPlanResponse, LayerPlan } from '../../common/delta/wire.js';
import { sha256Digest } from '../../common/digest.js';
import { MEDIA } from '../../common/oci.js';
import { checkDeltaHeader, deltaDiskBytes, rebuiltManifest, routeLayers, type LayerRoute, type MissingLayer } from '../../edge-daemon/download/delta-plan.js';
import { diskChecks } from '../../edge-daemon/download/plan.js';

const d = (c: string): string => `sha256:${c.repeat(64)}`;
const layer: MissingLayer = { index: 1, digest: d('b'), diffId: d('2'), size: 1000 };
const row = (over: Partial<LayerPlan>): LayerPlan => ({ index: 1, digest: d('b'), diffId: d('2'), size: 1000, mediaType: MEDIA.ociLayerGzip, action: 'full', ...over });
const planOf = (...layers: LayerPlan[]): DeltaPlanResponse => ({ target: 'rig/app@' + d('m'), config: d('c'), layers, bytes: { full: 1000, planned: 1000 } });
const base = { image: 'rig/app@' + d('o'), index: 1, digest: d('a'), diffId: d('1') };
const delta = { digest: d('e'), size: 40, url: '/berth/v1/deltas/x' };

describe('routeLayers: the proxy plan is advice, checked against the signed config', () => {
  it('takes a delta the plan offers for this very layer', () => {
    const [r] = routeLayers([layer], planOf(row({ action: 'delta', base, delta })));
    expect(r).toEqual({ kind: 'delta', layer, base, delta });
  });
  it('refuses a row naming another diff_id or blob at that index', () => {
    for (const bad of [row({ action: 'delta', base, delta, diffId: d('9') }), row({ action: 'delta', base, delta, digest: d('9') })]) {
      const [r] = routeLayers([layer], planOf(bad));
      expect(r).toMatchObject({ kind: 'full', reason: 'unavailable' });
    }
  });
  it('names each reason for a full layer', () => {
    const reasons = [
      routeLayers([layer], { error: 'no delta plan: 404' })[0],
      routeLayers([layer], planOf(row({ action: 'pending' })))[0],
      routeLayers([layer], planOf(row({ reason: 'no base: the device holds no layers' })))[0],
      routeLayers([layer], planOf(row({ reason: 'not worth it: the delta is 600 bytes' })))[0],
      routeLayers([layer], planOf(row({ action: 'present' })))[0],
    ].map((r) => (r.kind === 'full' ? r.reason : r.kind));
    expect(reasons).toEqual(['unavailable', 'unavailable', 'no-base', 'full', 'full']);
  });
});

describe('checkDeltaHeader and the disk a delta needs', () => {
  const route = routeLayers([layer], planOf(row({ action: 'delta', base, delta })))[0] as Extract<LayerRoute, { kind: 'delta' }>;
  it('accepts a header leading from the planned base to this layer', () => {
    const h = checkDeltaHeader(encodeHeader({ version: 1, from: d('1'), to: d('2'), fromSize: 5000, toSize: 6000 }), route);
    expect(deltaDiskBytes(h, 40, false)).toEqual({ state: 40 + 6000 + 5000, engine: 6000 });
    expect(deltaDiskBytes(h, 40, true)).toEqual({ state: 40 + 6000, engine: 6000 });
  });
  it('refuses a header for another target or base', () => {
    expect(() => checkDeltaHeader(encodeHeader({ version: 1, from: d('1'), to: d('3'), fromSize: 1, toSize: 1 }), route)).toThrow(/rebuilds/);
    expect(() => checkDeltaHeader(encodeHeader({ version: 1, from: d('4'), to: d('2'), fromSize: 1, toSize: 1 }), route)).toThrow(/starts from/);
  });
  it('counts state-dir and engine bytes apart on one filesystem', () => {
    const [c] = diskChecks({ missingBytes: 100, engineBytes: 30, marginBytes: 5, stateDir: { path: '/s', dev: 1 }, engineRoot: { path: '/e', dev: 1 } });
    expect(c.needed).toBe(135);
  });
});

describe('rebuiltManifest', () => {
  const manifest = (mediaType?: string): Buffer =>
    Buffer.from(JSON.stringify({ schemaVersion: 2, ...(mediaType ? { mediaType } : {}), config: { mediaType: MEDIA.ociConfig, digest: d('c'), size: 9 }, layers: [{ mediaType: MEDIA.ociLayerGzip, digest: d('a'), size: 10 }, { mediaType: MEDIA.ociLayerGzip, digest: d('b'), size: 20 }] }));
  it('names rebuilt layers by their tar and keeps the config and every other layer', () => {
    const m = rebuiltManifest(manifest(), new Map([[d('b'), { diffId: d('2'), size: 6000 }]]));
    const json = JSON.parse(m.bytes.toString());
    expect(m.digest).toBe(sha256Digest(m.bytes));
    expect(json.config.digest).toBe(d('c'));
    expect(json.layers).toEqual([
      { mediaType: MEDIA.ociLayerGzip, digest: d('a'), size: 10 },
      { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: d('2'), size: 6000 },
    ]);
  });
  it("uses Docker's uncompressed media type in a Docker manifest", () => {
    const json = JSON.parse(rebuiltManifest(manifest(MEDIA.dockerManifest), new Map([[d('a'), { diffId: d('1'), size: 1 }]])).bytes.toString());
    expect(json.layers[0].mediaType).toBe('application/vnd.docker.image.rootfs.diff.tar');
  });
});
