import type { KeyObject } from 'node:crypto';
import { chmod, chown, mkdir, open, readdir, rename, rm, statfs, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../gateway-log.js';
import { openForDevice } from '../../protocol/secret-box.js';
import { nameSafe, type Release } from '../reconcile/spec.js';
import { deviceSecretsDir, secretMounts, type SecretMountSpec } from './mounts.js';

/** statfs f_type of tmpfs and ramfs: memory only, gone at power off. */
const MEMORY_FS = new Set([0x01021994, 0x858458f6]);

export interface SecretFilesOptions {
  /** The tmpfs root (default /run/berth): files go to `<root>/<device>/secrets/…`. */
  root: string;
  /** Development and tests only: accept a root that is not tmpfs (secrets then touch a disk). */
  anyFilesystem?: boolean;
  deviceId: string;
  privateKey: KeyObject;
  /** This device's public encryption key, base64url raw (what a JWE's kid must name). */
  publicKey: string;
  log: Logger;
}

/**
 * The gateway's secret files: decrypted from the document's JWEs (addressed to this device's
 * X25519 key) onto tmpfs, 0400 (or the manifest's mode) and owned by the target uid, bind-mounted
 * read-only into the containers. Never written under the state dir or on disk; the journal keeps
 * only the encrypted document, so a restart (or a reboot that emptied the tmpfs) decrypts again.
 */
export class SecretFiles {
  private rootChecked = false;

  constructor(private readonly opts: SecretFilesOptions) {}

  get root(): string {
    return this.opts.root;
  }

  private mountsOf(release: Release): SecretMountSpec[] {
    const safe = nameSafe(this.opts.deviceId);
    return Object.entries(release.spec.services).flatMap(([name, s]) => secretMounts(this.opts.root, safe, name, s, release.secrets));
  }

  private async decrypt(release: Release, name: string): Promise<Uint8Array> {
    const s = release.secrets?.[name];
    if (!s) throw new Error(`the document does not carry secret ${name}`);
    return openForDevice(s.jwe, this.opts.privateKey, this.opts.publicKey, { device: this.opts.deviceId, name, ref: s.ref });
  }

  /**
   * Before a document is accepted: every secret it mounts decrypts with this device's key, and the
   * root is tmpfs. Throws the reason; the caller refuses the document and nothing running stops.
   */
  async check(release: Release): Promise<void> {
    const names = [...new Set(this.mountsOf(release).map((m) => m.name))];
    if (!names.length) return;
    await this.checkRoot();
    for (const n of names) (await this.decrypt(release, n)).fill(0);
  }

  private async checkRoot(): Promise<void> {
    if (this.rootChecked) return;
    await mkdir(this.opts.root, { recursive: true, mode: 0o700 });
    const fs = await statfs(this.opts.root);
    if (!MEMORY_FS.has(fs.type) && !this.opts.anyFilesystem) {
      throw new Error(`secrets root ${this.opts.root} is not a tmpfs (filesystem type 0x${fs.type.toString(16)}): secret files would reach a disk; mount a tmpfs there or point --secrets-dir at one`);
    }
    this.rootChecked = true;
  }

  /** Writes the files `release` mounts that are not there yet (a reboot empties the tmpfs). */
  async materialize(release: Release): Promise<void> {
    const mounts = this.mountsOf(release);
    if (!mounts.length) return;
    await this.checkRoot();
    for (const m of mounts) {
      if (await exists(m.source)) continue;
      const dir = dirname(m.source);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const value = await this.decrypt(release, m.name);
      const tmp = `${m.source}.tmp`;
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(value);
      } finally {
        await fh.close();
        value.fill(0);
      }
      await chown(tmp, m.uid, m.gid);
      await chmod(tmp, m.mode);
      await rename(tmp, m.source);
    }
    this.opts.log.info({ release: `${release.name}@${release.version}`, files: mounts.length }, 'secret files written to tmpfs');
  }

  /** Removes every secret file that none of `keep` mounts (a replaced release, a rolled-back one). */
  async prune(keep: (Release | null)[]): Promise<void> {
    const base = deviceSecretsDir(this.opts.root, nameSafe(this.opts.deviceId));
    let present: string[];
    try {
      present = await readdir(base);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const kept = new Set(keep.flatMap((r) => (r ? this.mountsOf(r).map((m) => dirname(m.source)) : [])));
    for (const d of present) {
      const path = `${base}/${d}`;
      if (!kept.has(path)) await rm(path, { recursive: true, force: true });
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
