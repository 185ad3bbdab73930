import { DIGEST_RE } from './digest.js';

/** Media types of the OCI image spec and their Docker v2 twins. */
export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** What a client sends in Accept to get any manifest kind back with its exact bytes. */
export const MANIFEST_ACCEPT = [MEDIA.ociManifest, MEDIA.ociIndex, MEDIA.dockerManifest, MEDIA.dockerList].join(', ');

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
}

export type ParsedManifest =
  | { kind: 'image'; mediaType: string; config: Descriptor; layers: Descriptor[] }
  | { kind: 'index'; mediaType: string; manifests: Descriptor[] };

function descriptor(value: unknown, where: string): Descriptor {
  const d = value as Partial<Descriptor> | null;
  if (!d || typeof d.digest !== 'string' || !DIGEST_RE.test(d.digest) || typeof d.size !== 'number' || d.size < 0) {
    throw new Error(`malformed manifest: ${where} is not a descriptor with a sha256 digest and a size`);
  }
  return { mediaType: String(d.mediaType ?? ''), digest: d.digest, size: d.size, platform: d.platform };
}

/**
 * Reads an image manifest or index (OCI or Docker v2) into its descriptors. The caller has already
 * checked the bytes against their digest; this checks the shape, so a bad manifest fails here with
 * a message rather than later with an undefined.
 */
export function parseManifestBytes(bytes: Uint8Array | string, contentType?: string): ParsedManifest {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
  } catch {
    throw new Error('malformed manifest: not JSON');
  }
  const mediaType = String(json.mediaType ?? contentType ?? '');
  if (Array.isArray(json.manifests)) {
    return { kind: 'index', mediaType: mediaType || MEDIA.ociIndex, manifests: json.manifests.map((m, i) => descriptor(m, `manifests[${i}]`)) };
  }
  if (!Array.isArray(json.layers)) throw new Error('malformed manifest: neither layers nor manifests');
  return {
    kind: 'image',
    mediaType: mediaType || MEDIA.ociManifest,
    config: descriptor(json.config, 'config'),
    layers: json.layers.map((l, i) => descriptor(l, `layers[${i}]`)),
  };
}

/** Picks the linux/amd64-style entry of an index for this machine's platform. */
export function pickPlatform(index: Descriptor[], arch: string = goArch(process.arch)): Descriptor | undefined {
  return index.find((d) => (d.platform?.os ?? 'linux') === 'linux' && d.platform?.architecture === arch) ?? index[0];
}

/**
 * This machine's platform as an index names it (`linux/amd64`): what pickPlatform looks for. A
 * gateway reports it, so that the control plane can ask the registry proxy for the deltas of the
 * images its devices really pick from multi-platform indexes.
 */
export function hostPlatform(): string {
  return `linux/${goArch(process.arch)}`;
}

function goArch(nodeArch: string): string {
  return ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386' } as Record<string, string>)[nodeArch] ?? nodeArch;
}
