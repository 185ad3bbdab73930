import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../common/log.js';
import { tighten } from './file-modes.js';

const PREFIX = 'berth-sealed:v1:';
export const KEY_SECRET_FILE = 'signing-key.secret';

/**
 * Encryption at rest of the signing keys' private halves (AES-256-GCM, the kid as associated
 * data, so a sealed key cannot be moved to another row). The database then holds no usable key:
 * a copy of it, a backup or a leaked -wal file signs nothing without the secret, which lives
 * apart from it (a 0600 file in the data dir, or the environment).
 */
export class KeyVault {
  private constructor(private readonly secret: Buffer) {}

  /**
   * The secret from `fromEnv` (BERTH_SIGNING_KEY_SECRET: 32 bytes base64url; what control planes
   * sharing one database server must all be given), else `<dataDir>/signing-key.secret`, created
   * 0600 on first start.
   */
  static async open(dataDir: string, fromEnv: string | undefined, log: Logger): Promise<KeyVault> {
    if (fromEnv !== undefined) return new KeyVault(decodeSecret(fromEnv, 'BERTH_SIGNING_KEY_SECRET'));
    const file = join(dataDir, KEY_SECRET_FILE);
    const made = randomBytes(32).toString('base64url');
    const created = await writeFile(file, made + '\n', { mode: 0o600, flag: 'wx' }).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'EEXIST') return false;
        throw err;
      },
    );
    if (created) log.info({ keySecretFile: file }, 'created the secret that encrypts the signing keys at rest; back it up with the database');
    else await tighten(file, 0o600, log);
    const text = created ? made : (await readFile(file, 'utf8')).trim();
    return new KeyVault(decodeSecret(text, file));
  }

  /**
   * A key for one purpose (HKDF-SHA256 of the secret, `purpose` as info): every control plane given
   * the same secret derives the same one, and it tells nothing about the secret or other purposes.
   */
  derive(purpose: string): Buffer {
    return Buffer.from(hkdfSync('sha256', this.secret, Buffer.alloc(0), `berth:${purpose}`, 32));
  }

  static isSealed(stored: string): boolean {
    return stored.startsWith(PREFIX);
  }

  seal(pem: string, kid: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.secret, iv);
    c.setAAD(Buffer.from(kid));
    const body = Buffer.concat([c.update(pem, 'utf8'), c.final()]);
    return PREFIX + [iv, c.getAuthTag(), body].map((b) => b.toString('base64url')).join('.');
  }

  unseal(stored: string, kid: string): string {
    if (!KeyVault.isSealed(stored)) throw new Error(`signing key ${kid} is stored in plain text; it is sealed at start`);
    const [iv, tag, body] = stored.slice(PREFIX.length).split('.').map((p) => Buffer.from(p, 'base64url'));
    try {
      const d = createDecipheriv('aes-256-gcm', this.secret, iv);
      d.setAAD(Buffer.from(kid));
      d.setAuthTag(tag);
      return Buffer.concat([d.update(body), d.final()]).toString('utf8');
    } catch {
      throw new Error(`signing key ${kid} cannot be decrypted: this control plane has another key secret than the one that sealed it (${KEY_SECRET_FILE} or BERTH_SIGNING_KEY_SECRET)`);
    }
  }
}

function decodeSecret(text: string, where: string): Buffer {
  const b = Buffer.from(text.trim(), 'base64url');
  if (b.length !== 32) throw new Error(`${where}: expected 32 bytes in base64url (e.g. openssl rand -base64 32 | tr "+/" "-_" | tr -d =)`);
  return b;
}
