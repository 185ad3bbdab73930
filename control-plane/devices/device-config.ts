import type { Manifest } from '../../manifests/model.js';
import { variableNeeds, type VariableNeed } from '../../manifests/variables.js';
import type { Reader } from '../campaigns/store.js';
import type { ControlPlaneContext } from '../context.js';
import { effectiveValues, lackText, resolveForManifest, type DeviceLack, type VariableRule } from '../vars/resolve.js';
import { loadRules } from '../vars/store.js';
import { secretInputs, SecretsLacking, snapshotSecrets, type SecretInputs } from '../device-secrets/snapshot.js';

/**
 * What a device's document carries beyond the published manifest, resolved for that device when
 * it is assigned (issue 13) and stored with its desired row (`desired.config`, JSON). Signing only
 * reads it back, so changing a variable (or a secret) changes no device until a campaign or an
 * assignment resolves again and issues a new sequence.
 */
export interface DeviceConfig {
  /** Values of the variables the manifest uses, by name (defaults are applied at signing). */
  vars?: Record<string, string>;
  /** Owned by control-plane/device-secrets: each secret as a JWE to this device; `ref` names its version. */
  secrets?: Record<string, { ref: string; jwe: string }>;
}

export interface SnapshotDevice {
  id: string;
  serial: string;
  labels: Record<string, string>;
}

/** A device that cannot be given the manifest: what it lacks, in words that name it. */
export class ConfigLacking extends Error {
  constructor(readonly serial: string, readonly lack: DeviceLack) {
    super(`device ${serial} lacks ${lackText(lack)}`);
    this.name = 'ConfigLacking';
  }
}

/**
 * What resolving a config may use of the control plane. Secrets widen this Pick (their key); every
 * caller passes the control plane's context, and the types below follow this one.
 */
export type ConfigContext = Pick<ControlPlaneContext, 'now' | 'keys'>;

/** What a manifest needs resolved, read once per assignment batch. */
export interface SnapshotInputs {
  ctx: ConfigContext;
  spec: Manifest;
  needs: VariableNeed[];
  rules: VariableRule[];
  /** The secrets the manifest mounts and their scoped values; null when it mounts none. */
  secrets: SecretInputs | null;
}

export async function snapshotInputs(ctx: ConfigContext, db: Reader, spec: Manifest): Promise<SnapshotInputs> {
  const needs = variableNeeds(spec);
  // The vault unseals stored secret values (the signing keys' key secret, apart from the database).
  return { ctx, spec, needs, rules: needs.length ? await loadRules(db) : [], secrets: await secretInputs(db, spec, ctx.keys.vault) };
}

/**
 * The device's config for the manifest; null when the manifest needs none. Throws ConfigLacking
 * when the device lacks a value or two selector values conflict (the rollout check refuses those
 * up front; this is the last word for a late joiner or a value removed since).
 */
export async function snapshotConfig(db: Reader, device: SnapshotDevice, inputs: SnapshotInputs): Promise<DeviceConfig | null> {
  const config: DeviceConfig = {};
  if (inputs.needs.length) {
    const r = resolveForManifest(inputs.spec, inputs.needs, effectiveValues(inputs.rules, device));
    if ('lack' in r) throw new ConfigLacking(device.serial, r.lack);
    config.vars = r.vars;
  }
  if (inputs.secrets) {
    try {
      config.secrets = await snapshotSecrets(db, inputs.secrets, device);
    } catch (err) {
      if (err instanceof SecretsLacking) throw new ConfigLacking(device.serial, { lacking: err.lacks, conflicts: [] });
      throw err;
    }
  }
  return config.vars || config.secrets ? config : null;
}

/** Whether two configs give the device the same thing: the same values and secret versions (a JWE is re-randomized each time). */
export function sameConfig(a: DeviceConfig | null, b: DeviceConfig | null): boolean {
  const key = (c: DeviceConfig | null) =>
    JSON.stringify([
      Object.entries(c?.vars ?? {}).sort(([x], [y]) => x.localeCompare(y)),
      Object.entries(c?.secrets ?? {})
        .map(([n, s]) => [n, s.ref])
        .sort(([x], [y]) => x.localeCompare(y)),
    ]);
  return key(a) === key(b);
}

export function parseConfig(text: string | null | undefined): DeviceConfig | null {
  return text ? (JSON.parse(text) as DeviceConfig) : null;
}

export function configText(c: DeviceConfig | null): string | null {
  return c ? JSON.stringify(c) : null;
}
