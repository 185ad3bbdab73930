import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { desc, isNull } from 'drizzle-orm';
import type { JWK } from 'jose';
import { generateEd25519 } from '../protocol/keys.js';
import type { Db } from './db/open.js';
import { signingKeys } from './db/schema.js';

interface LoadedKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicJwk: JWK;
  createdAt: number;
  retiredAt: number | null;
}

type Writer = Pick<Db, 'insert' | 'update' | 'select'>;

/**
 * The control plane's Ed25519 keys: one active key signs deployment documents and tokens; a
 * retired key stays in the JWKS for `retentionMs` so what it signed still verifies until it expires.
 */
export class SigningKeys {
  private keys: LoadedKey[] = [];

  constructor(private readonly db: Db, private readonly retentionMs: number) {}

  async load(): Promise<void> {
    const rows = await this.db.select().from(signingKeys).orderBy(desc(signingKeys.createdAt));
    this.keys = rows.map((r) => {
      const privateKey = createPrivateKey(r.privateKey);
      return {
        kid: r.kid,
        privateKey,
        publicKey: createPublicKey(privateKey),
        publicJwk: JSON.parse(r.publicJwk) as JWK,
        createdAt: r.createdAt,
        retiredAt: r.retiredAt,
      };
    });
  }

  /** Creates the first key if there is none; returns whether it did. */
  static async ensure(tx: Writer, now: number): Promise<boolean> {
    const active = await tx.select({ kid: signingKeys.kid }).from(signingKeys).where(isNull(signingKeys.retiredAt)).limit(1);
    if (active.length > 0) return false;
    await tx.insert(signingKeys).values(newKeyRow(now));
    return true;
  }

  /** Retires the active key and makes a new one; returns the new kid. Call `load()` after commit. */
  static async rotate(tx: Writer, now: number): Promise<{ kid: string; retired: string[] }> {
    const active = await tx.select({ kid: signingKeys.kid }).from(signingKeys).where(isNull(signingKeys.retiredAt));
    await tx.update(signingKeys).set({ retiredAt: now }).where(isNull(signingKeys.retiredAt));
    const row = newKeyRow(now);
    await tx.insert(signingKeys).values(row);
    return { kid: row.kid, retired: active.map((a) => a.kid) };
  }

  active(): { kid: string; privateKey: KeyObject } {
    const key = this.keys.find((k) => k.retiredAt === null);
    if (!key) throw new Error('no active signing key (database not initialized?)');
    return { kid: key.kid, privateKey: key.privateKey };
  }

  /** Public key by kid, re-reading the database once for a kid another process may have made. */
  async publicKey(kid: string | undefined): Promise<KeyObject | undefined> {
    if (!kid) return undefined;
    let key = this.keys.find((k) => k.kid === kid);
    if (!key) {
      await this.load();
      key = this.keys.find((k) => k.kid === kid);
    }
    return key && this.usable(key, Date.now()) ? key.publicKey : undefined;
  }

  jwks(now: number = Date.now()): { keys: JWK[] } {
    return {
      keys: this.keys
        .filter((k) => this.usable(k, now))
        .map((k) => ({ ...k.publicJwk, kid: k.kid, alg: 'EdDSA', use: 'sig' })),
    };
  }

  private usable(k: LoadedKey, now: number): boolean {
    return k.retiredAt === null || now - k.retiredAt < this.retentionMs;
  }
}

function newKeyRow(now: number) {
  const pair = generateEd25519();
  const jwk = pair.publicKey.export({ format: 'jwk' });
  return {
    kid: `k-${new Date(now).toISOString().slice(0, 10)}-${randomBytes(4).toString('hex')}`,
    privateKey: pair.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
    publicJwk: JSON.stringify({ kty: jwk.kty, crv: jwk.crv, x: jwk.x }),
    createdAt: now,
    retiredAt: null,
  };
}
