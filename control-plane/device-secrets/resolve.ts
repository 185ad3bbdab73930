import { createHash } from 'node:crypto';
import { pickScoped } from '../scoped-values.js';

/**
 * Which stored value of a secret a device gets, pure: its device-scoped value, else the one
 * selector-scoped value whose selector matches it, else the fleet's (../scoped-values.ts). Two
 * matching selector values are a conflict, never a silent pick: sealed values cannot be compared.
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
  const pick = pickScoped(candidates, device);
  if (pick.kind === 'value') return { kind: 'value', secret: pick.rule };
  if (pick.kind === 'conflict') return { kind: 'conflict', selectors: pick.rules.map((s) => s.target).sort() };
  return { kind: 'missing' };
}

/**
 * The opaque version id a document carries, saying nothing of the value: it changes on every
 * rotation and when the device's encryption key changes, so either gives the device a new
 * snapshot (hence a new sequence) when it is assigned again.
 */
export function secretRef(s: Pick<ScopedSecret, 'id' | 'version'>, encryptionKey: string): string {
  return `${s.id}.v${s.version}.k${createHash('sha256').update(encryptionKey).digest('base64url').slice(0, 8)}`;
}

/** One thing a device lacks to receive a manifest's secrets: what (`secret db_password`, `an encryption key`) and why. */
export interface SecretLack {
  name: string;
  reason: string;
}

/** What a device lacks to receive a manifest's secrets; empty when it lacks nothing. */
export function lackingFor(names: readonly string[], byName: ReadonlyMap<string, ScopedSecret[]>, device: SecretDevice & { encryptionKey: string | null }): SecretLack[] {
  if (!names.length) return [];
  const out: SecretLack[] = [];
  if (!device.encryptionKey) out.push({ name: 'an encryption key', reason: 'its daemon registers one at its next enrollment or token renewal, once it supports secrets' });
  for (const name of names) {
    const r = resolveSecret(byName.get(name) ?? [], device);
    if (r.kind === 'missing') out.push({ name: `secret ${name}`, reason: `no value: berth secrets set ${name} --device ${device.serial} | --selector … | --fleet` });
    if (r.kind === 'conflict') out.push({ name: `secret ${name}`, reason: `conflict: set for selectors ${r.selectors.join(' and ')}, which both match it` });
  }
  return out;
}

export function lackLine(l: SecretLack): string {
  return `${l.name} (${l.reason})`;
}
