import { createHash } from 'node:crypto';
import { MEDIA } from '../../common/oci.js';
import { pseudoRandomBytes, type ForgedImage, type LayerSpec } from '../rig/forge.js';

/** Text a shipped app has plenty of (configs, scripts, docs): compresses like real files do. */
function textFile(seed: string, lines: number): string {
  const words = ['service', 'gateway', 'sensor', 'value', 'config', 'release', 'update', 'layer', 'device', 'metric'];
  const rnd = pseudoRandomBytes(lines * 6, seed);
  let out = '';
  for (let i = 0; i < lines; i++) out += `${words[rnd[i * 6] % 10]}_${rnd[i * 6 + 1]} = ${words[rnd[i * 6 + 2] % 10]} ${rnd.readUInt16LE(i * 6 + 3)}\n`;
  return out;
}

/**
 * A rootfs-like layer: 300 files (text and binaries, about 5 MB). Version 2 changes a few: two
 * binaries patched in place, one config rewritten, one library added, as a routine upgrade does.
 */
export function appLayer(seed: string, version: 1 | 2): LayerSpec {
  const files: Record<string, string | Buffer> = {};
  for (let i = 0; i < 240; i++) files[`/usr/share/app/doc-${i}.txt`] = textFile(`${seed}:doc:${i}`, 80);
  for (let i = 0; i < 60; i++) files[`/usr/lib/app/lib${i}.so`] = pseudoRandomBytes(60_000, `${seed}:lib:${i}`);
  if (version === 2) {
    for (const i of [3, 17]) {
      const b = Buffer.from(files[`/usr/lib/app/lib${i}.so`] as Buffer);
      b.write(`patched ${seed} v2`, 20_000);
      files[`/usr/lib/app/lib${i}.so`] = b;
    }
    files['/usr/share/app/doc-5.txt'] = textFile(`${seed}:doc:5:v2`, 80);
    files['/usr/lib/app/libnew.so'] = pseudoRandomBytes(20_000, `${seed}:new`);
  }
  return { files };
}

/** This machine's platform as an OCI index names it, and one it is not. */
export const ARCH = ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386' } as Record<string, string>)[process.arch] ?? process.arch;
export const NOT_ARCH = ARCH === 's390x' ? 'ppc64le' : 's390x';

/**
 * Pushes to `registryUrl` an OCI index `repo:tag` of `other` (another platform, listed first) and
 * `mine` (this machine's), both already in `repo`; returns it pinned (`registry/repo@sha256:…`).
 */
export async function pushIndex(registryUrl: string, repo: string, tag: string, mine: ForgedImage, other: ForgedImage): Promise<string> {
  const entry = async (img: ForgedImage, architecture: string) => {
    const res = await fetch(`${registryUrl}/v2/${repo}/manifests/${img.manifestDigest}`, { headers: { accept: MEDIA.ociManifest } });
    const bytes = Buffer.from(await res.arrayBuffer());
    return { mediaType: MEDIA.ociManifest, digest: img.manifestDigest, size: bytes.length, platform: { os: 'linux', architecture } };
  };
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [await entry(other, NOT_ARCH), await entry(mine, ARCH)] }));
  const put = await fetch(`${registryUrl}/v2/${repo}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': MEDIA.ociIndex }, body });
  await put.arrayBuffer();
  if (put.status !== 201) throw new Error(`pushing index ${repo}:${tag}: HTTP ${put.status}`);
  return `${new URL(registryUrl).host}/${repo}@sha256:${createHash('sha256').update(body).digest('hex')}`;
}
