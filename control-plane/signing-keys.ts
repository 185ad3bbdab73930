import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { desc, eq, isNull } from 'drizzle-orm';
import type { JWK } from 'jose';
import { generateEd25519 } from '../protocol/keys.js';
import type { Client } from '@libsql/client';
import type { Logger } from '../common/log.js';
import type { Db } from './db/open.js';
import { signingKeys } from './db/schema.js';
import { KeyVault } from './secrets/key-vault.js';

interface LoadedKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicJwk: JWK;
  createdAt: number;
  retiredAt: number | null;
  revokedAt: number | null;
}

type Writer = Pick<Db, 'insert' | 'update' | 'select'>;

/**
 * The control plane's Ed25519 keys: one active key signs deployment documents and tokens; a
 * retired key stays in the JWKS for `retentionMs` so what it signed still verifies until it expires.
 */
export class SigningKeys {
  private keys: LoadedKey[] = [];
  /**
   * The JWKS as of `from`, the same until `until` (a retired key's retention ends) or the next
   * load(): every enrollment answer carries it, and building it each time was ~1 % of the
   * enrollment's CPU (issue 17). Frozen, as it is shared.
   */
  private jwksMemo: { from: number; until: number; value: { keys: JWK[] } } | undefined;

  // The vault is shared with device secrets (control-plane/device-secrets): one key apart from the database.
  constructor(private readonly db: Db, private readonly retentionMs: number, readonly vault: KeyVault) {}

  async load(): Promise<void> {
    const rows = await this.db.select().from(signingKeys).orderBy(desc(signingKeys.createdAt));
    this.jwksMemo = undefined;
    this.keys = rows.map((r) => {
      const privateKey = createPrivateKey(this.vault.unseal(r.privateKey, r.kid));
      return {
        kid: r.kid,
        privateKey,
        publicKey: createPublicKey(privateKey),
        publicJwk: JSON.parse(r.publicJwk) as JWK,
        createdAt: r.createdAt,
        retiredAt: r.retiredAt,
        revokedAt: r.revokedAt,
      };
    });
  }

  /** Creates the first key if there is none; returns whether it did. */
  async ensure(tx: Writer, now: number): Promise<boolean> {
    const active = await tx.select({ kid: signingKeys.kid }).from(signingKeys).where(isNull(signingKeys.retiredAt)).limit(1);
    if (active.length > 0) return false;
    await tx.insert(signingKeys).values(newKeyRow(now, this.vault));
    return true;
  }

  /** Retires the active key and makes a new one; returns the new kid. Call `load()` after commit. */
  async rotate(tx: Writer, now: number): Promise<{ kid: string; retired: string[] }> {
    const active = await tx.select({ kid: signingKeys.kid }).from(signingKeys).where(isNull(signingKeys.retiredAt));
    await tx.update(signingKeys).set({ retiredAt: now }).where(isNull(signingKeys.retiredAt));
    const row = newKeyRow(now, this.vault);
    await tx.insert(signingKeys).values(row);
    return { kid: row.kid, retired: active.map((a) => a.kid) };
  }

  /**
   * Databases made before keys were sealed hold the PEM in plain text: seal it, then rewrite the
   * file (secure_delete, VACUUM, a truncating checkpoint) so no old page or WAL frame keeps it.
   * Runs at start, before anything else writes; returns how many keys it sealed. The pragmas and
   * VACUUM concern the embedded file only (`file`): a libSQL server keeps its own pages.
   */
  async sealPlaintext(client: Client, log: Logger, file = true): Promise<number> {
    const rows = (await this.db.select({ kid: signingKeys.kid, privateKey: signingKeys.privateKey }).from(signingKeys)).filter((r) => !KeyVault.isSealed(r.privateKey));
    if (rows.length === 0) return 0;
    if (file) await client.execute('PRAGMA secure_delete=ON');
    for (const r of rows) {
      await client.execute({ sql: 'UPDATE signing_keys SET private_key = ? WHERE kid = ?', args: [this.vault.seal(r.privateKey, r.kid), r.kid] });
    }
    if (file) {
      try {
        await client.execute('VACUUM');
        await client.execute('PRAGMA wal_checkpoint(TRUNCATE)');
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'signing keys sealed, but the database could not be compacted: old pages may still hold them until SQLite reuses them');
      }
    }
    log.warn({ keys: rows.map((r) => r.kid) }, 'the signing keys were stored in plain text in the database: sealed them (encrypted at rest) and rewrote the file');
    return rows.length;
  }

  /**
   * Revokes `kid`: the active key is first rotated away (a new one signs from now on). Returns
   * null for an unknown kid. Call `load()` after commit.
   */
  async revoke(tx: Writer, kid: string, now: number): Promise<{ kid: string; active: string; already: boolean } | null> {
    const row = (await tx.select().from(signingKeys).where(eq(signingKeys.kid, kid)).limit(1))[0];
    if (!row) return null;
    if (row.revokedAt !== null) {
      const active = await tx.select({ kid: signingKeys.kid }).from(signingKeys).where(isNull(signingKeys.retiredAt)).limit(1);
      return { kid, active: active[0]?.kid ?? kid, already: true };
    }
    const active = row.retiredAt === null ? (await this.rotate(tx, now)).kid : (await tx.select({ kid: signingKeys.kid }).from(signingKeys).where(isNull(signingKeys.retiredAt)).limit(1))[0].kid;
    await tx.update(signingKeys).set({ revokedAt: now, retiredAt: row.retiredAt ?? now }).where(eq(signingKeys.kid, kid));
    return { kid, active, already: false };
  }

  /**
   * Every key the database holds, newest first, with its state: `active` signs, `retired` still
   * verifies what it signed until `verifiesUntil`, `revoked` verifies nothing. Never the private key.
   */
  async list(now: number): Promise<{ kid: string; state: 'active' | 'retired' | 'revoked'; createdAt: number; retiredAt: number | null; revokedAt: number | null; verifiesUntil: number | null; inJwks: boolean }[]> {
    const rows = await this.db.select({ kid: signingKeys.kid, createdAt: signingKeys.createdAt, retiredAt: signingKeys.retiredAt, revokedAt: signingKeys.revokedAt }).from(signingKeys).orderBy(desc(signingKeys.createdAt));
    return rows.map((r) => {
      const state = r.revokedAt !== null ? ('revoked' as const) : r.retiredAt === null ? ('active' as const) : ('retired' as const);
      const verifiesUntil = state === 'retired' ? r.retiredAt! + this.retentionMs : null;
      return { ...r, state, verifiesUntil, inJwks: state === 'active' || (state === 'retired' && now < verifiesUntil!) };
    });
  }

  /** Kids revoked (not merely retired): the registry proxy refuses tokens they signed. */
  revokedKids(): string[] {
    return this.keys.filter((k) => k.revokedAt !== null).map((k) => k.kid);
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
    const memo = this.jwksMemo;
    if (memo && now >= memo.from && now < memo.until) return memo.value;
    const usable = this.keys.filter((k) => this.usable(k, now));
    const value = Object.freeze({ keys: Object.freeze(usable.map((k) => Object.freeze({ ...k.publicJwk, kid: k.kid, alg: 'EdDSA', use: 'sig' }))) as JWK[] });
    // A retired key leaves the set when its retention ends; nothing else changes it but load().
    const until = Math.min(Infinity, ...usable.filter((k) => k.retiredAt !== null).map((k) => (k.retiredAt as number) + this.retentionMs));
    this.jwksMemo = { from: now, until, value };
    return value;
  }

  private usable(k: LoadedKey, now: number): boolean {
    if (k.revokedAt !== null) return false;
    return k.retiredAt === null || now - k.retiredAt < this.retentionMs;
  }
}

function newKeyRow(now: number, vault: KeyVault) {
  const pair = generateEd25519();
  const jwk = pair.publicKey.export({ format: 'jwk' });
  const kid = `k-${new Date(now).toISOString().slice(0, 10)}-${randomBytes(4).toString('hex')}`;
  return {
    kid,
    privateKey: vault.seal(pair.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, kid),
    publicJwk: JSON.stringify({ kty: jwk.kty, crv: jwk.crv, x: jwk.x }),
    createdAt: now,
    retiredAt: null,
  };
}
