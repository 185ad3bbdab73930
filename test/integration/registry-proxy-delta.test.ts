import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyDelta, bufferSource } from '../../common/delta/index.js';
import { DELTA_MEDIA_TYPE, deltaPlanResponse, type DeltaPlanResponse } from '../../common/delta/wire.js';
import type { PullAccess } from '../../protocol/tokens.js';
import { startRegistryProxy, type RunningProxy } from '../../registry-proxy/index.js';
import { forgeImage, pseudoRandomBytes, type ForgedImage } from '../rig/forge.js';
import { gnuTar, type TreeFile } from '../rig/gnu-tar.js';
import { rigFromEnv } from '../rig/index.js';
import { runCaptured } from './cli-support.js';
import { startPullTokenIssuer, type PullTokenIssuer } from './pull-token-issuer.js';

/**
 * Deltas through the real proxy over HTTP, from images in the rig's real registry: plan, fetch
 * (with Range), apply, and the pull scopes that keep a device to its own releases.
 */

const osLayer = (): Buffer => gnuTar({ 'etc/os-release': 'ID=berth-test\n', 'lib/libc.so': pseudoRandomBytes(60_000, 'libc') });

function app(version: 1 | 2 | 3): Record<string, TreeFile> {
  const tool = pseudoRandomBytes(300_000, 'tool');
  if (version > 1) tool.write(`version ${version}`, 120_000);
  const files: Record<string, TreeFile> = {
    'app/bin/tool': { content: tool, mode: 0o755 },
    'app/bin/tool-hardlink': { hardlink: 'app/bin/tool' },
    'app/bin/run': { symlink: 'tool' },
    'app/etc/config': `version=${version}\n` + 'setting=value\n'.repeat(200),
    [`app/share/${'long-directory-name-'.repeat(6)}/${'n'.repeat(110)}`]: `long name, v${version}\n`,
    'app/cache/.wh..wh..opq': '',
    'app/old/.wh.gone': '',
  };
  if (version > 1) files['app/lib/.wh.removed.so'] = '';
  else files['app/lib/removed.so'] = pseudoRandomBytes(10_000, 'removed');
  return files;
}

describe('registry proxy layer deltas', () => {
  const rig = rigFromEnv();
  const cacheDir = mkdtempSync(join(tmpdir(), 'berth-proxy-delta-'));
  const outDir = mkdtempSync(join(tmpdir(), 'berth-delta-out-'));
  const repo = `delta-${process.pid}`;
  const name = `rig/${repo}`;
  const otherName = `rig/${repo}-other`;
  const tars = { os: osLayer(), v1: gnuTar(app(1)), v2: gnuTar(app(2)), fresh: gnuTar({ 'app/bin/tool': pseudoRandomBytes(300_000, 'unrelated') }) };
  let issuer: PullTokenIssuer;
  let proxy: RunningProxy;
  let v1: ForgedImage;
  let v2: ForgedImage;
  let fresh: ForgedImage;
  let other: ForgedImage;

  const image = (img: ForgedImage, n = name): string => `${n}@${img.manifestDigest}`;
  const access = (...entries: [string, ForgedImage[]][]): PullAccess => entries.map(([n, imgs]) => ({ type: 'repository', name: n, actions: ['pull'], digests: imgs.map((i) => i.manifestDigest) }));
  const plan = (token: string, body: unknown) =>
    fetch(`${proxy.url}/berth/v1/deltas/plan`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

  /** Asks until nothing is pending, as a gateway does (Retry-After, shortened for the test). */
  async function settledPlan(token: string, body: unknown): Promise<{ first: number; plan: DeltaPlanResponse }> {
    let first = 0;
    for (let i = 0; i < 200; i++) {
      const res = await plan(token, body);
      first ||= res.status;
      const json = await res.json();
      if (res.status === 200) return { first, plan: deltaPlanResponse.parse(json) };
      expect(res.status, JSON.stringify(json)).toBe(202);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('plan still pending after 200 tries');
  }

  beforeAll(async () => {
    issuer = await startPullTokenIssuer();
    v1 = await forgeImage(rig.registry, repo, 'v1', { layers: [{ files: {}, tar: tars.os }, { files: {}, tar: tars.v1 }] });
    v2 = await forgeImage(rig.registry, repo, 'v2', { layers: [{ files: {}, tar: tars.os }, { files: {}, tar: tars.v2 }] });
    fresh = await forgeImage(rig.registry, repo, 'fresh', { layers: [{ files: {}, tar: tars.os }, { files: {}, tar: tars.fresh }] });
    other = await forgeImage(rig.registry, `${repo}-other`, 'v2', { layers: [{ files: {}, tar: tars.v2 }] });
    proxy = await startRegistryProxy({ cacheDir, upstreams: [{ alias: 'rig', url: rig.registryUrl }], controlPlane: issuer.url, delta: { level: 3 } });
  });

  afterAll(async () => {
    await proxy?.close();
    await issuer?.close();
    rmSync(cacheDir, { recursive: true, force: true });
    rmSync(outDir, { recursive: true, force: true });
  });

  it('plans, serves and applies a delta: the rebuilt layer is the target diff_id, whiteouts and hard links byte for byte', async () => {
    const token = await issuer.mint('device:a', access([name, [v1, v2]]));
    const { first, plan: p } = await settledPlan(token, { target: image(v2), have: [image(v1)] });
    expect(first).toBe(202);
    expect(p.target).toBe(image(v2));
    expect(p.layers.map((l) => l.action)).toEqual(['present', 'delta']);
    const layer = p.layers[1];
    expect(layer.diffId).toBe(v2.layers[1].diffId);
    expect(layer.base).toEqual({ image: image(v1), index: 1, digest: v1.layers[1].digest, diffId: v1.layers[1].diffId });
    expect(p.bytes.full).toBe(v2.layers[1].size);
    expect(p.bytes.planned).toBe(layer.delta!.size);
    expect(layer.delta!.size).toBeLessThan(v2.layers[1].size / 20);

    const res = await fetch(`${proxy.url}${layer.delta!.url}`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).toBe(`"${layer.delta!.digest}"`);
    expect(res.headers.get('content-type')).toBe(DELTA_MEDIA_TYPE);
    const outPath = join(outDir, 'v2-layer1.tar');
    const applied = await applyDelta({ base: bufferSource(tars.v1), delta: res.body!, outPath, expectDiffId: layer.diffId });
    expect(applied.diffId).toBe(v2.layers[1].diffId);
    const rebuilt = readFileSync(outPath);
    expect(rebuilt.equals(tars.v2)).toBe(true);
    for (const marker of ['.wh..wh..opq', '.wh.gone', '.wh.removed.so', 'tool-hardlink']) expect(rebuilt.includes(Buffer.from(marker))).toBe(true);
  });

  it('resumes a cut delta download with Range and If-Range', async () => {
    const token = await issuer.mint('device:a', access([name, [v1, v2]]));
    const { plan: p } = await settledPlan(token, { target: image(v2), have: [image(v1)] });
    const url = `${proxy.url}${p.layers[1].delta!.url}`;
    const etag = `"${p.layers[1].delta!.digest}"`;
    const auth = { authorization: `Bearer ${token}` };
    const whole = Buffer.from(await (await fetch(url, { headers: auth })).arrayBuffer());
    const head = await fetch(url, { headers: { ...auth, range: 'bytes=0-99' } });
    expect(head.status).toBe(206);
    const first = Buffer.from(await head.arrayBuffer());
    const rest = await fetch(url, { headers: { ...auth, range: `bytes=${first.length}-`, 'if-range': etag } });
    expect(rest.status).toBe(206);
    expect(rest.headers.get('content-range')).toBe(`bytes 100-${whole.length - 1}/${whole.length}`);
    expect(Buffer.concat([first, Buffer.from(await rest.arrayBuffer())]).equals(whole)).toBe(true);
    const stale = await fetch(url, { headers: { ...auth, range: 'bytes=100-', 'if-range': '"sha256:0000"' } });
    expect(stale.status).toBe(200);
    expect(Buffer.from(await stale.arrayBuffer()).equals(whole)).toBe(true);
    const beyond = await fetch(url, { headers: { ...auth, range: `bytes=${whole.length}-` } });
    expect(beyond.status).toBe(416);
    await beyond.arrayBuffer();
  });

  it('refuses a device asking for a delta outside its releases', async () => {
    const desiredOnly = await issuer.mint('device:b', access([name, [v2]]));
    const denied = await plan(desiredOnly, { target: image(v2), have: [image(v1)] });
    expect(denied.status).toBe(403);
    expect(JSON.stringify(await denied.json())).toMatch(/DENIED.*outside the desired state/);

    const noTarget = await plan(await issuer.mint('device:c', access([name, [v1]])), { target: image(v2), have: [image(v1)] });
    expect(noTarget.status).toBe(403);
    await noTarget.arrayBuffer();

    const ran = await issuer.mint('device:a', access([name, [v1, v2]]));
    const { plan: p } = await settledPlan(ran, { target: image(v2), have: [image(v1)] });
    const delta = p.layers[1].delta!;
    // The delta itself, fetched with a token that lacks its base, or named between other images.
    const lacksBase = await fetch(`${proxy.url}${delta.url}`, { headers: { authorization: `Bearer ${desiredOnly}` } });
    expect(lacksBase.status).toBe(403);
    await lacksBase.arrayBuffer();
    const swapped = `${proxy.url}/berth/v1/deltas/${delta.digest}?target=${encodeURIComponent(image(v1))}&base=${encodeURIComponent(image(v2))}`;
    const wrongWay = await fetch(swapped, { headers: { authorization: `Bearer ${ran}` } });
    expect(wrongWay.status).toBe(403);
    expect(JSON.stringify(await wrongWay.json())).toMatch(/does not lead from a layer of/);
    const anonymous = await fetch(`${proxy.url}${delta.url}`);
    expect(anonymous.status).toBe(401);
    await anonymous.arrayBuffer();
  });

  it('picks the base sharing the most file paths when no image of the same repository is held', async () => {
    const token = await issuer.mint('device:d', access([name, [v1]], [otherName, [other]]));
    const { first, plan: p } = await settledPlan(token, { target: image(other, otherName), have: [image(v1)] });
    expect(first).toBe(202);
    expect(p.layers).toHaveLength(1);
    expect(p.layers[0].action).toBe('delta');
    expect(p.layers[0].base?.diffId).toBe(v1.layers[1].diffId);
  });

  it('answers full when a delta would be over half of the layer, or the device holds nothing', async () => {
    const token = await issuer.mint('device:e', access([name, [v1, fresh]]));
    const { plan: p } = await settledPlan(token, { target: image(fresh), have: [image(v1)] });
    expect(p.layers[0].action).toBe('present');
    expect(p.layers[1]).toMatchObject({ action: 'full', reason: expect.stringMatching(/not worth it/) });
    expect(p.bytes.planned).toBe(p.bytes.full);
    const { first, plan: none } = await settledPlan(token, { target: image(fresh), have: [] });
    expect(first).toBe(200);
    expect(none.layers.map((l) => l.action)).toEqual(['full', 'full']);
  });

  it('warm --delta-from computes the deltas before any device asks', async () => {
    const v3 = await forgeImage(rig.registry, repo, 'v3', { layers: [{ files: {}, tar: tars.os }, { files: {}, tar: gnuTar(app(3)) }] });
    const tokenFile = join(outDir, 'operator.token');
    writeFileSync(tokenFile, await issuer.mint('operator:ops', [{ type: 'repository', name, actions: ['pull'] }]), { mode: 0o600 });
    const cli = await runCaptured(['registry-proxy', 'warm', '--proxy', proxy.url, '--token-file', tokenFile, '--delta-from', `${name}:v1`, image(v3)], {});
    expect(cli.code, cli.stderr).toBe(0);
    const printed = cli.stdout.split('\n');
    const warmed = JSON.parse(printed.find((l) => l.includes('"deltas"')) as string) as { deltas: DeltaPlanResponse };
    expect(warmed.deltas.layers.map((l) => l.action)).toEqual(['present', 'delta']);
    const device = await issuer.mint('device:f', access([name, [v1, v3]]));
    const res = await plan(device, { target: image(v3), have: [image(v1)] });
    expect(res.status).toBe(200);
    expect(deltaPlanResponse.parse(await res.json()).layers[1].delta?.digest).toBe(warmed.deltas.layers[1].delta?.digest);
  });

  it('refuses a malformed plan request with a message naming the field', async () => {
    const token = await issuer.mint('device:a', access([name, [v1, v2]]));
    const res = await plan(token, { have: 'nope' });
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toMatch(/target/);
  });
});
