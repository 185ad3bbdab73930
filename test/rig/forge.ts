import { createCipheriv, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { MEDIA } from '../../common/oci.js';
import { tarChunks, type TarEntry } from './tar.js';

/**
 * The image forge: builds OCI images in code, byte for byte deterministic, and pushes them with the
 * registry push API. Test tooling, also imported by the demo from dist; so no vitest in here.
 */

export type LayerFile =
  | string
  | Buffer
  | { symlink: string }
  | { content: string | Buffer; mode: number }
  | { directory: true; mode?: number };

export interface LayerSpec {
  /** Absolute or relative paths inside the image; parents are created as 0755 directories. */
  files: Record<string, LayerFile>;
  /** Overrides the image's gzipLevel for this layer. */
  gzipLevel?: number;
  /** A ready layer tar (e.g. from gnu-tar.ts, with hard links and PAX records) used instead of `files`. */
  tar?: Buffer;
}

export interface ImageConfigSpec {
  Cmd?: string[];
  Entrypoint?: string[];
  /** PATH is added when missing, as `docker build` images have it. */
  Env?: string[];
  Healthcheck?: { Test: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; Retries?: number };
  WorkingDir?: string;
  User?: string;
  Labels?: Record<string, string>;
  ExposedPorts?: Record<string, Record<string, never>>;
  StopSignal?: string;
}

export type RegistryAuth = { user: string; password: string } | { token: string };

export interface ForgeOptions {
  layers: LayerSpec[];
  config?: ImageConfigSpec;
  auth?: RegistryAuth;
  /**
   * gzip level of the layers; deterministic for a given level. Default: 6 (as docker uses), but 0
   * (stored deflate, still valid gzip) for layers over BIG_LAYER_BYTES: big test layers are
   * pseudo-random and do not compress, and deflating them runs at ~40 MB/s on the test VM
   * against ~400 MB/s stored.
   */
  gzipLevel?: number;
}

export interface ForgedLayer {
  digest: string;
  size: number;
  diffId: string;
}

export interface ForgedImage {
  /** host:port/repo@sha256:… (pinned by manifest digest). */
  reference: string;
  /** host:port/repo:tag */
  tagReference: string;
  manifestDigest: string;
  configDigest: string;
  manifest: OciManifest;
  layers: ForgedLayer[];
}

export interface OciManifest {
  schemaVersion: 2;
  mediaType: string;
  config: { mediaType: string; digest: string; size: number };
  layers: { mediaType: string; digest: string; size: number }[];
}

/** A built image, not yet pushed: every blob with its bytes. */
export interface BuiltImage {
  manifest: OciManifest;
  manifestBytes: Buffer;
  manifestDigest: string;
  config: { digest: string; bytes: Buffer };
  layers: (ForgedLayer & { blob: Buffer })[];
}

export const BIG_LAYER_BYTES = 32 << 20;

const EPOCH = '1970-01-01T00:00:00Z';
const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const sha256 = (data: Uint8Array): string => 'sha256:' + createHash('sha256').update(data).digest('hex');

function toEntries(spec: LayerSpec): TarEntry[] {
  return Object.entries(spec.files).map(([path, file]): TarEntry => {
    if (typeof file === 'string') return { type: 'file', path, content: Buffer.from(file, 'utf8'), mode: 0o644 };
    if (Buffer.isBuffer(file)) return { type: 'file', path, content: file, mode: 0o644 };
    if ('symlink' in file) return { type: 'symlink', path, target: file.symlink };
    if ('directory' in file) return { type: 'dir', path, mode: file.mode ?? 0o755 };
    const content = typeof file.content === 'string' ? Buffer.from(file.content, 'utf8') : file.content;
    return { type: 'file', path, content, mode: file.mode };
  });
}

/**
 * Tar → gzip as a stream: the content buffers go into zlib as they are (no tar copy in memory), the
 * diff id is hashed on the way in and the blob digest on the way out, and the compressed chunks
 * are joined once at the end.
 */
export async function buildLayer(spec: LayerSpec, imageGzipLevel?: number): Promise<ForgedLayer & { blob: Buffer }> {
  const entries = toEntries(spec);
  const contentBytes = spec.tar?.length ?? entries.reduce((n, e) => n + (e.type === 'file' ? e.content.length : 0), 0);
  const gzipLevel = spec.gzipLevel ?? imageGzipLevel ?? (contentBytes > BIG_LAYER_BYTES ? 0 : 6);
  const diffHash = createHash('sha256');
  const blobHash = createHash('sha256');
  const out: Buffer[] = [];
  function* hashed(): Generator<Buffer> {
    for (const chunk of spec.tar ? [spec.tar] : tarChunks(entries)) {
      diffHash.update(chunk);
      yield chunk;
    }
  }
  await pipeline(
    Readable.from(hashed(), { objectMode: false }),
    createGzip({ level: gzipLevel, chunkSize: 1 << 20 }),
    new Writable({
      write(chunk: Buffer, _enc, done) {
        blobHash.update(chunk);
        out.push(chunk);
        done();
      },
    }),
  );
  const blob = Buffer.concat(out);
  return { digest: 'sha256:' + blobHash.digest('hex'), size: blob.length, diffId: 'sha256:' + diffHash.digest('hex'), blob };
}

function imageConfig(config: ImageConfigSpec | undefined, diffIds: string[]): Buffer {
  const env = config?.Env ?? [];
  const c = { ...config, Env: env.some((e) => e.startsWith('PATH=')) ? env : [DEFAULT_PATH, ...env] };
  const json = {
    architecture: goArch(process.arch),
    os: 'linux',
    created: EPOCH,
    config: c,
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: diffIds.map(() => ({ created: EPOCH, created_by: 'berth forge' })),
  };
  return Buffer.from(JSON.stringify(json));
}

function goArch(nodeArch: string): string {
  return ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386' } as Record<string, string>)[nodeArch] ?? nodeArch;
}

/** Builds all blobs of an image without pushing (same spec → same bytes → same digests). */
export async function buildImage(opts: Omit<ForgeOptions, 'auth'>): Promise<BuiltImage> {
  if (opts.layers.length === 0) throw new Error('forge: an image needs at least one layer');
  const layers = [];
  // One at a time: big layers in parallel would hold several compressed copies at once.
  for (const spec of opts.layers) layers.push(await buildLayer(spec, opts.gzipLevel));
  const configBytes = imageConfig(opts.config, layers.map((l) => l.diffId));
  const config = { digest: sha256(configBytes), bytes: configBytes };
  const manifest: OciManifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, digest: config.digest, size: configBytes.length },
    layers: layers.map((l) => ({ mediaType: MEDIA.ociLayerGzip, digest: l.digest, size: l.size })),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  return { manifest, manifestBytes, manifestDigest: sha256(manifestBytes), config, layers };
}

function registryBase(registry: string): { base: string; host: string } {
  const url = new URL(/^https?:\/\//.test(registry) ? registry : `http://${registry}`);
  return { base: `${url.protocol}//${url.host}`, host: url.host };
}

function authHeader(auth: RegistryAuth | undefined): Record<string, string> {
  if (!auth) return {};
  if ('token' in auth) return { authorization: `Bearer ${auth.token}` };
  return { authorization: 'Basic ' + Buffer.from(`${auth.user}:${auth.password}`).toString('base64') };
}

async function failure(what: string, res: Response): Promise<Error> {
  const body = (await res.text().catch(() => '')).slice(0, 500);
  return new Error(`forge: ${what}: HTTP ${res.status} ${body}`);
}

/** Monolithic blob push: HEAD to skip what the registry has, POST for an upload, PUT ?digest=. */
async function pushBlob(base: string, repository: string, digest: string, bytes: Buffer, headers: Record<string, string>): Promise<void> {
  const head = await fetch(`${base}/v2/${repository}/blobs/${digest}`, { method: 'HEAD', headers });
  if (head.status === 200) return;
  const start = await fetch(`${base}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers: { ...headers, 'content-length': '0' } });
  await start.arrayBuffer();
  if (start.status !== 202) throw await failure(`starting upload of ${digest} to ${base}/v2/${repository}`, start);
  const location = start.headers.get('location');
  if (!location) throw new Error(`forge: upload of ${digest} to ${base}/v2/${repository}: 202 without Location`);
  const url = new URL(location, base);
  url.searchParams.set('digest', digest);
  const put = await fetch(url, {
    method: 'PUT',
    headers: { ...headers, 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) },
    body: bytes,
  });
  await put.arrayBuffer();
  if (put.status !== 201) throw await failure(`finishing upload of ${digest} to ${base}/v2/${repository}`, put);
}

/** Pushes one blob (benchmarks push bare blobs to measure serving them); returns its digest. */
export async function pushBlobBytes(registry: string, repository: string, bytes: Buffer, auth?: RegistryAuth): Promise<string> {
  const digest = sha256(bytes);
  await pushBlob(registryBase(registry).base, repository, digest, bytes, authHeader(auth));
  return digest;
}

/** Pushes a built image's blobs, then its manifest by tag. */
export async function pushImage(registry: string, repository: string, tag: string, image: BuiltImage, auth?: RegistryAuth): Promise<ForgedImage> {
  const { base, host } = registryBase(registry);
  const headers = authHeader(auth);
  for (const layer of image.layers) await pushBlob(base, repository, layer.digest, layer.blob, headers);
  await pushBlob(base, repository, image.config.digest, image.config.bytes, headers);
  const res = await fetch(`${base}/v2/${repository}/manifests/${tag}`, {
    method: 'PUT',
    headers: { ...headers, 'content-type': MEDIA.ociManifest },
    body: image.manifestBytes,
  });
  await res.arrayBuffer();
  if (res.status !== 201) throw await failure(`putting manifest ${repository}:${tag} to ${base}`, res);
  const echoed = res.headers.get('docker-content-digest');
  if (echoed && echoed !== image.manifestDigest) {
    throw new Error(`forge: registry stored manifest ${repository}:${tag} as ${echoed}, expected ${image.manifestDigest}`);
  }
  return {
    reference: `${host}/${repository}@${image.manifestDigest}`,
    tagReference: `${host}/${repository}:${tag}`,
    manifestDigest: image.manifestDigest,
    configDigest: image.config.digest,
    manifest: image.manifest,
    layers: image.layers.map(({ digest, size, diffId }) => ({ digest, size, diffId })),
  };
}

/** Builds an image from layer specs and pushes it to `registry` (host:port) as repository:tag. */
export async function forgeImage(registry: string, repository: string, tag: string, opts: ForgeOptions): Promise<ForgedImage> {
  return pushImage(registry, repository, tag, await buildImage(opts), opts.auth);
}

/**
 * Deterministic, incompressible bytes: AES-256-CTR keystream keyed by sha256(seed). Hundreds of
 * MB/s, so big layers cost little to make.
 */
export function pseudoRandomBytes(size: number, seed: string): Buffer {
  if (!Number.isSafeInteger(size) || size < 0) throw new Error(`pseudoRandomBytes: size ${size} is not a non-negative integer`);
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const out = Buffer.allocUnsafe(size);
  const step = 8 << 20;
  const zeros = Buffer.alloc(Math.min(step, size));
  for (let offset = 0; offset < size; offset += step) {
    const n = Math.min(step, size - offset);
    cipher.update(zeros.subarray(0, n)).copy(out, offset);
  }
  return out;
}

/**
 * "Version 2" of a layer: `bytes` bytes of the file at `path` overwritten (at an offset derived
 * from `seed`) with pseudo-random bytes, length and mode kept; a missing file is added with that
 * many bytes. Only that file changes, so an update's size can be measured against it.
 */
export function variant(layer: LayerSpec, change: { path: string; bytes: number; seed: string }): LayerSpec {
  if (!Number.isSafeInteger(change.bytes) || change.bytes <= 0) throw new Error(`variant: bytes ${change.bytes} must be a positive integer`);
  const key = Object.keys(layer.files).find((k) => k.replace(/^\/+/, '') === change.path.replace(/^\/+/, ''));
  const patch = pseudoRandomBytes(change.bytes, `variant:${change.seed}`);
  if (key === undefined) return { ...layer, files: { ...layer.files, [change.path]: patch } };
  const file = layer.files[key];
  let content: Buffer;
  let mode = 0o644;
  if (typeof file === 'string') content = Buffer.from(file, 'utf8');
  else if (Buffer.isBuffer(file)) content = file;
  else if ('content' in file) {
    content = typeof file.content === 'string' ? Buffer.from(file.content, 'utf8') : file.content;
    mode = file.mode;
  } else throw new Error(`variant: ${change.path} is not a regular file in the layer`);
  const length = Math.max(content.length, change.bytes);
  const next = Buffer.alloc(length);
  content.copy(next);
  const room = length - change.bytes;
  const offset = room === 0 ? 0 : createHash('sha256').update(change.seed).digest().readUInt32BE(0) % (room + 1);
  patch.copy(next, offset);
  if (next.equals(content)) throw new Error(`variant: change of ${change.path} with seed ${change.seed} left it unchanged`);
  const keepsMode = typeof file === 'object' && !Buffer.isBuffer(file) && 'content' in file;
  return { ...layer, files: { ...layer.files, [key]: keepsMode ? { content: next, mode } : next } };
}

const BUSYBOX_APPLETS = [
  'sh', 'ash', 'sleep', 'httpd', 'wget', 'cat', 'echo', 'ls', 'true', 'false', 'env', 'mkdir', 'touch', 'rm', 'cp', 'mv',
  'ln', 'ps', 'kill', 'grep', 'sed', 'awk', 'head', 'tail', 'wc', 'test', '[', 'printf', 'date', 'id', 'hostname', 'nc',
  'sha256sum', 'md5sum', 'stat', 'chmod', 'pwd', 'uname', 'timeout', 'tee', 'dd', 'find', 'xargs', 'sort', 'tr', 'cut',
  'basename', 'dirname', 'readlink', 'du', 'df', 'seq', 'usleep', 'nproc', 'pidof', 'which', 'yes', 'sync',
];

/**
 * A minimal runnable root: the static busybox at /bin/busybox with applet symlinks in /bin,
 * /etc/passwd and /etc/group with root and nobody, and a sticky /tmp.
 */
export function busyboxLayer(busyboxPath = process.env.BERTH_BUSYBOX ?? '/usr/bin/busybox'): LayerSpec {
  let binary: Buffer;
  try {
    binary = readFileSync(busyboxPath);
  } catch (err) {
    throw new Error(`busyboxLayer: cannot read ${busyboxPath} (install busybox-static): ${(err as Error).message}`);
  }
  const files: Record<string, LayerFile> = {
    '/bin/busybox': { content: binary, mode: 0o755 },
    '/etc/passwd': 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
    '/etc/group': 'root:x:0:\nnobody:x:65534:\n',
    '/tmp': { directory: true, mode: 0o1777 },
    '/root': { directory: true, mode: 0o700 },
  };
  for (const applet of BUSYBOX_APPLETS) files[`/bin/${applet}`] = { symlink: 'busybox' };
  return { files };
}
