import { randomUUID } from 'node:crypto';
import { and, asc, eq, inArray } from 'drizzle-orm';
import type { Reader } from '../campaigns/store.js';
import type { Tx } from '../context.js';
import { deviceSecrets, devices } from '../db/schema.js';
import type { KeyVault } from '../secrets/key-vault.js';
import type { ScopedSecret } from './resolve.js';

/**
 * The stored secrets: one row per name and scope, its value sealed with the vault key (the same
 * key, file or environment, that seals the signing keys, kept apart from the database). The
 * associated data binds a sealed value to its row and version, so it cannot be replayed elsewhere.
 */

export type SecretRow = typeof deviceSecrets.$inferSelect;

function aad(id: string, version: number): string {
  return `device-secret:${id}:${version}`;
}

export function sealValue(vault: KeyVault, value: Buffer, id: string, version: number): string {
  return vault.seal(value.toString('base64'), aad(id, version));
}

export function unsealValue(vault: KeyVault, row: Pick<SecretRow, 'id' | 'version' | 'value' | 'name'>): Buffer {
  try {
    return Buffer.from(vault.unseal(row.value, aad(row.id, row.version)), 'base64');
  } catch {
    throw new Error(`secret ${row.name} (version ${row.version}) cannot be decrypted with this control plane's key secret (signing-key.secret or BERTH_SIGNING_KEY_SECRET)`);
  }
}

export async function findSecret(db: Reader, name: string, scope: SecretRow['scope'], target: string): Promise<SecretRow | null> {
  const [r] = await db.select().from(deviceSecrets).where(and(eq(deviceSecrets.name, name), eq(deviceSecrets.scope, scope), eq(deviceSecrets.target, target)));
  return r ?? null;
}

/** Creates version 1 or rotates to version + 1, in the caller's transaction. */
export async function putSecret(tx: Tx, vault: KeyVault, s: { name: string; scope: SecretRow['scope']; target: string; value: Buffer; by: string; now: number }): Promise<SecretRow> {
  const before = await findSecret(tx, s.name, s.scope, s.target);
  const id = before?.id ?? randomUUID();
  const version = (before?.version ?? 0) + 1;
  const row: SecretRow = { id, name: s.name, scope: s.scope, target: s.target, version, value: sealValue(vault, s.value, id, version), createdAt: before?.createdAt ?? s.now, updatedAt: s.now, updatedBy: s.by };
  if (before) await tx.update(deviceSecrets).set({ version, value: row.value, updatedAt: s.now, updatedBy: s.by }).where(eq(deviceSecrets.id, id));
  else await tx.insert(deviceSecrets).values(row);
  return row;
}

export async function deleteSecret(tx: Tx, id: string): Promise<void> {
  await tx.delete(deviceSecrets).where(eq(deviceSecrets.id, id));
}

export async function listSecrets(db: Reader): Promise<SecretRow[]> {
  return db.select().from(deviceSecrets).orderBy(asc(deviceSecrets.name), asc(deviceSecrets.scope), asc(deviceSecrets.target));
}

/** Every scoped value of these names, grouped by name (without the sealed values: resolution needs none). */
export async function candidatesFor(db: Reader, names: readonly string[]): Promise<Map<string, ScopedSecret[]>> {
  const out = new Map<string, ScopedSecret[]>();
  if (!names.length) return out;
  const rows = await db
    .select({ id: deviceSecrets.id, name: deviceSecrets.name, scope: deviceSecrets.scope, target: deviceSecrets.target, version: deviceSecrets.version })
    .from(deviceSecrets)
    .where(inArray(deviceSecrets.name, [...names]));
  for (const r of rows) out.set(r.name, [...(out.get(r.name) ?? []), r]);
  return out;
}

export async function loadSecretRow(db: Reader, id: string): Promise<SecretRow | null> {
  const [r] = await db.select().from(deviceSecrets).where(eq(deviceSecrets.id, id));
  return r ?? null;
}

/** Device id → serial, for the views (device scopes are stored by id, which never changes). */
export async function serialsOf(db: Reader, ids: string[]): Promise<Map<string, string>> {
  if (!ids.length) return new Map();
  const rows = await db.select({ id: devices.id, serial: devices.serial }).from(devices).where(inArray(devices.id, ids));
  return new Map(rows.map((r) => [r.id, r.serial]));
}
