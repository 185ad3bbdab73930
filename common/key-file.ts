import { readFile, stat } from 'node:fs/promises';

/** Reading TLS private keys (servers' --tls-key, a device's --tls-client-key): owner-only or refused. */

export class TlsConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TlsConfigError';
  }
}

/** A private key may be read by its owner only (0600 or 0400): anything more is refused, not fixed. */
export async function readPrivateKeyFile(path: string, flag = '--tls-key'): Promise<Buffer> {
  let mode: number;
  try {
    mode = (await stat(path)).mode & 0o777;
  } catch (err) {
    throw new TlsConfigError(`${flag} ${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (mode & 0o077) throw new TlsConfigError(`${flag} ${path}: mode ${mode.toString(8).padStart(4, '0')} lets others read the private key; chmod 600 ${path}`);
  return readFile(path);
}
