import { eq } from 'drizzle-orm';
import type { Manifest } from '../../manifests/model.js';
import { secretsUsed } from '../../manifests/secrets.js';
import type { DocumentSecret } from '../../protocol/deployment.js';
import { sealForDevice } from '../../protocol/secret-box.js';
import type { ControlPlaneContext, Tx } from '../context.js';
import { devices } from '../db/schema.js';
import { lackingFor, resolveSecret, secretRef } from './resolve.js';
import { candidatesFor, loadSecretRow, unsealValue } from './store.js';

/** A device cannot be given a manifest's secrets (no value, two selector values, no encryption key). */
export class SecretsLacking extends Error {
  constructor(readonly serial: string, readonly problems: string[]) {
    super(`device ${serial} cannot receive the manifest's secrets: ${problems.join('; ')}`);
    this.name = 'SecretsLacking';
  }
}

/**
 * The secrets of `spec` for one device, as its desired state stores them at assignment (in the
 * device config, see devices/device-config.ts): name → {ref, jwe}, each JWE addressed to the
 * device's encryption key alone; null when the manifest mounts none. Two snapshots differ when a
 * `ref` differs (rotation, new device key); the JWEs themselves are re-randomized every time.
 * Throws SecretsLacking naming what the device lacks.
 */
export async function snapshotSecrets(ctx: Pick<ControlPlaneContext, 'keys'>, tx: Tx, deviceId: string, spec: Manifest): Promise<Record<string, DocumentSecret> | null> {
  const names = secretsUsed(spec);
  if (!names.length) return null;
  const [d] = await tx.select({ id: devices.id, serial: devices.serial, labels: devices.labels, encryptionKey: devices.encryptionKey }).from(devices).where(eq(devices.id, deviceId));
  if (!d) throw new Error(`device ${deviceId} does not exist`);
  const device = { ...d, labels: JSON.parse(d.labels) as Record<string, string> };
  const byName = await candidatesFor(tx, names);
  const problems = lackingFor(names, byName, device);
  const key = device.encryptionKey;
  if (problems.length || !key) throw new SecretsLacking(d.serial, problems);
  const out: Record<string, DocumentSecret> = {};
  for (const n of names) {
    const r = resolveSecret(byName.get(n) ?? [], device);
    const row = r.kind === 'value' ? await loadSecretRow(tx, r.secret.id) : null;
    if (!row) throw new SecretsLacking(d.serial, [`secret ${n} has no single value`]);
    const ref = secretRef(row, key);
    out[n] = { ref, jwe: await sealForDevice(unsealValue(ctx.keys.vault, row), key, { device: deviceId, name: n, ref }) };
  }
  return out;
}
