import * as fs from 'node:fs';
import type * as fsp from 'node:fs/promises';
import { promisify } from 'node:util';

/**
 * The part of node:fs/promises the daemon calls, on node:fs's callbacks (issue 11). The gateway
 * bundle resolves every `node:fs/promises` import to this module (scripts/bundle-gateway.ts); the
 * compiled modules keep node:fs/promises. Loading node:fs/promises loads its FileHandle, readline
 * (for `readLines`), fs watchers and directory streams, none of which the daemon uses: 0.36 MiB
 * resident (edge-daemon/README.md, Tenth pass). The calls are node:fs's own, so their results and
 * errors (code, syscall, path, message) are the same; `test/unit/gateway-fs.test.ts` runs each
 * through both.
 */

export const chmod = promisify(fs.chmod) as typeof fsp.chmod;
export const chown = promisify(fs.chown) as typeof fsp.chown;
export const mkdir = promisify(fs.mkdir) as typeof fsp.mkdir;
export const readdir = promisify(fs.readdir) as typeof fsp.readdir;
export const readFile = promisify(fs.readFile) as typeof fsp.readFile;
export const rename = promisify(fs.rename) as typeof fsp.rename;
export const rm = promisify(fs.rm) as typeof fsp.rm;
export const stat = promisify(fs.stat) as typeof fsp.stat;
export const statfs = promisify(fs.statfs) as typeof fsp.statfs;
export const unlink = promisify(fs.unlink) as typeof fsp.unlink;
export const writeFile = promisify(fs.writeFile) as typeof fsp.writeFile;

// fs.read and fs.write promisify to { bytesRead | bytesWritten, buffer } (their promisify.custom args).
const fsRead = promisify(fs.read);
const fsWrite = promisify(fs.write) as (fd: number, buffer: Uint8Array, offset: number, length: number, position: number | null) => Promise<{ bytesWritten: number }>;
const fsFstat = promisify(fs.fstat);
const fsFsync = promisify(fs.fsync);
const fsClose = promisify(fs.close);
const fsOpen = promisify(fs.open);

/** The FileHandle methods the daemon calls, with node:fs/promises' results. */
export class GatewayFileHandle {
  private closed = false;

  constructor(readonly fd: number) {}

  async read<T extends NodeJS.ArrayBufferView>(buffer: T, offset = 0, length = buffer.byteLength - offset, position: number | null = null): Promise<{ bytesRead: number; buffer: T }> {
    const { bytesRead } = await fsRead(this.fd, buffer, offset, length, position);
    return { bytesRead, buffer };
  }

  /** One write, as FileHandle.write: for a regular file the kernel takes it whole. */
  async write<T extends Uint8Array>(buffer: T, offset = 0, length = buffer.byteLength - offset, position: number | null = null): Promise<{ bytesWritten: number; buffer: T }> {
    const { bytesWritten } = await fsWrite(this.fd, buffer, offset, length, position);
    return { bytesWritten, buffer };
  }

  /** All of `data` from the current position, as FileHandle.writeFile. */
  async writeFile(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    for (let done = 0; done < bytes.byteLength; ) done += (await fsWrite(this.fd, bytes, done, bytes.byteLength - done, null)).bytesWritten;
  }

  stat(): Promise<fs.Stats> {
    return fsFstat(this.fd);
  }

  sync(): Promise<void> {
    return fsFsync(this.fd);
  }

  /** Closes once; closing again resolves, as FileHandle's does. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await fsClose(this.fd);
  }
}

export async function open(path: fs.PathLike, flags: fs.OpenMode = 'r', mode?: fs.Mode): Promise<GatewayFileHandle> {
  return new GatewayFileHandle(await fsOpen(path, flags, mode));
}
