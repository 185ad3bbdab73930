import { createHash } from 'node:crypto';
import { matchesSelector, parseSelector } from '../selector.js';

/**
 * Which stored value of a secret a device gets, pure: its device-scoped value, else the one
 * selector-scoped value whose selector matches it, else the fleet's. Two matching selector values
 * are a conflict, never a silent pick (as for variables).
 */

export interface ScopedSecret {
  id: string;
  name: string;
  scope: 'device' | 'selector' | 'fleet';
  /** Device id, selector text, or '' for the fleet. */
  target: string;
  version: number;
}

export interface SecretDevice {
  id: string;
  serial: string;
  labels: Record<string, string>;
}

export type Resolution = { kind: 'value'; secret: ScopedSecret } | { kind: 'missing' } | { kind: 'conflict'; selectors: string[] };

export function resolveSecret(candidates: readonly ScopedSecret[], device: SecretDevice): Resolution {
  const own = candidates.find((s) => s.scope === 'device' && s.target === device.id);
  if (own) return { kind: 'value', secret: own };
  const selected = candidates.filter((s) => s.scope === 'selector' && matchesSelector(parseSelector(s.target), device.labels));
  if (selected.length > 1) return { kind: 'conflict', selectors: selected.map((s) => s.target).sort() };
  if (selected.length === 1) return { kind: 'value', secret: selected[0] };
  const fleet = candidates.find((s) => s.scope === 'fleet');
  return fleet ? { kind: 'value', secret: fleet } : { kind: 'missing' };
}

/**
 * The opaque version id a document carries, saying nothing of the value: it changes on every
 * rotation and when the device's encryption key changes, so either gives the device a new
 * snapshot (hence a new sequence) when it is assigned again.
 */
export function secretRef(s: Pick<ScopedSecret, 'id' | 'version'>, encryptionKey: string): string {
  return `${s.id}.v${s.version}.k${createHash('sha256').update(encryptionKey).digest('base64url').slice(0, 8)}`;
}

/** What a device lacks to receive a manifest's secrets, one line per problem; empty when it lacks nothing. */
export function lackingFor(names: readonly string[], byName: ReadonlyMap<string, ScopedSecret[]>, device: SecretDevice & { encryptionKey: string | null }): string[] {
  if (!names.length) return [];
  const out: string[] = [];
  if (!device.encryptionKey) out.push('no encryption key (the device registers one at its next enrollment or token renewal with a daemon that supports secrets)');
  for (const name of names) {
    const r = resolveSecret(byName.get(name) ?? [], device);
    if (r.kind === 'missing') out.push(`no value for secret ${name} (berth secrets set ${name} --device ${device.serial} | --selector … | --fleet)`);
    if (r.kind === 'conflict') out.push(`secret ${name} is set for two selectors that both match it (${r.selectors.join(' and ')})`);
  }
  return out;
}
