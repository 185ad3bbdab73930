import { eq } from 'drizzle-orm';
import type { Manifest } from '../../manifests/model.js';
import { secretsUsed } from '../../manifests/secrets.js';
import type { DocumentSecret } from '../../protocol/deployment.js';
import { sealForDevice } from '../../protocol/secret-box.js';
import type { Reader } from '../campaigns/store.js';
import { devices } from '../db/schema.js';
import type { KeyVault } from '../secrets/key-vault.js';
import { lackingFor, lackLine, resolveSecret, secretRef, type ScopedSecret, type SecretDevice, type SecretLack } from './resolve.js';
import { candidatesFor, loadSecretRow, unsealValue } from './store.js';

/** A device cannot be given a manifest's secrets (no value, two selector values, no encryption key). */
export class SecretsLacking extends Error {
  constructor(readonly serial: string, readonly lacks: SecretLack[]) {
    super(`device ${serial} lacks ${lacks.map(lackLine).join(', ')}`);
    this.name = 'SecretsLacking';
  }
}

/** What a manifest's secrets need, read once per assignment batch (a wave). */
export interface SecretInputs {
  names: string[];
  byName: Map<string, ScopedSecret[]>;
  vault: KeyVault;
}

/** Null when the manifest mounts no secret: then assignment costs nothing more. */
export async function secretInputs(db: Reader, spec: Manifest, vault: KeyVault): Promise<SecretInputs | null> {
  const names = secretsUsed(spec);
  return names.length ? { names, byName: await candidatesFor(db, names), vault } : null;
}

/**
 * The manifest's secrets for one device, as its desired state stores them at assignment (in the
 * device config, devices/device-config.ts): name → {ref, jwe}, each JWE addressed to the device's
 * encryption key alone. Two snapshots differ when a `ref` differs (rotation, new device key); the
 * JWEs themselves are re-randomized every time. Throws SecretsLacking naming what the device lacks.
 */
export async function snapshotSecrets(db: Reader, inputs: SecretInputs, device: SecretDevice): Promise<Record<string, DocumentSecret>> {
  const [k] = await db.select({ key: devices.encryptionKey }).from(devices).where(eq(devices.id, device.id));
  const key = k?.key ?? null;
  const lacks = lackingFor(inputs.names, inputs.byName, { ...device, encryptionKey: key });
  if (lacks.length || !key) throw new SecretsLacking(device.serial, lacks);
  const out: Record<string, DocumentSecret> = {};
  for (const n of inputs.names) {
    const r = resolveSecret(inputs.byName.get(n) ?? [], device);
    const row = r.kind === 'value' ? await loadSecretRow(db, r.secret.id) : null;
    // Removed or rotated since the inputs were read: the next assignment sees the new state.
    if (!row || r.kind !== 'value' || row.version !== r.secret.version) throw new SecretsLacking(device.serial, [{ name: `secret ${n}`, reason: 'changed while being assigned; assign again' }]);
    const ref = secretRef(row, key);
    out[n] = { ref, jwe: await sealForDevice(unsealValue(inputs.vault, row), key, { device: device.id, name: n, ref }) };
  }
  return out;
}
