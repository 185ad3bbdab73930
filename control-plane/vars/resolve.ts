import { substituteVariables, type VariableNeed } from '../../manifests/variables.js';
import type { Selector } from '../selector.js';
import { pickScoped } from '../scoped-values.js';

/**
 * Which value of a variable a device gets, pure: device over selector over fleet
 * (../scoped-values.ts). Two selector values that both match a device and differ are a conflict,
 * never a silent pick (equal values agree, so they are not). A device-scoped value settles a
 * conflict below it.
 */

export interface VariableRule {
  name: string;
  scope: 'device' | 'selector' | 'fleet';
  /** Device id, normalized selector text, or '' for the fleet. */
  target: string;
  /** Parsed, for selector scope. */
  selector?: Selector;
  value: string;
}

/** Where an effective value comes from: `device`, `fleet`, or `selector site=berlin`. */
export type ValueSource = 'device' | 'fleet' | `selector ${string}`;

export interface EffectiveValue {
  value: string;
  source: ValueSource;
}

export interface Conflict {
  name: string;
  /** The selectors that match and disagree, with their values. */
  candidates: { selector: string; value: string }[];
}

export interface DeviceValues {
  values: Record<string, EffectiveValue>;
  conflicts: Conflict[];
}

export function effectiveValues(rules: readonly VariableRule[], device: { id: string; labels: Record<string, string> }): DeviceValues {
  const byName = new Map<string, VariableRule[]>();
  for (const r of rules) {
    const list = byName.get(r.name);
    if (list) list.push(r);
    else byName.set(r.name, [r]);
  }
  const values: Record<string, EffectiveValue> = {};
  const conflicts: Conflict[] = [];
  for (const [name, list] of [...byName].sort(([a], [b]) => a.localeCompare(b))) {
    const pick = pickScoped(list, device, (a, b) => a.value === b.value);
    if (pick.kind === 'conflict') conflicts.push({ name, candidates: pick.rules.map((r) => ({ selector: r.target, value: r.value })).sort((a, b) => a.selector.localeCompare(b.selector)) });
    else if (pick.kind === 'value') values[name] = { value: pick.rule.value, source: pick.rule.scope === 'selector' ? `selector ${pick.rule.target}` : pick.rule.scope };
  }
  return { values, conflicts };
}

/** Why one device cannot run a manifest's variables: what it lacks, what conflicts. */
export interface DeviceLack {
  lacking: { name: string; reason: string }[];
  conflicts: Conflict[];
}

/**
 * What a device's document will hold: the values of the variables the manifest uses, or why it
 * cannot. Only the names the manifest uses are snapshotted, so setting an unrelated variable
 * changes no device's document.
 */
export function resolveForManifest(spec: unknown, needs: readonly VariableNeed[], dv: DeviceValues): { vars: Record<string, string> } | { lack: DeviceLack } {
  const used = new Set(needs.map((n) => n.name));
  const conflicts = dv.conflicts.filter((c) => used.has(c.name));
  const vars: Record<string, string> = {};
  for (const n of [...used].sort()) if (Object.hasOwn(dv.values, n)) vars[n] = dv.values[n].value;
  const conflicted = new Set(conflicts.map((c) => c.name));
  const sub = substituteVariables(spec, vars);
  const lacking = 'unresolved' in sub ? dedupe(sub.unresolved.filter((u) => !conflicted.has(u.name))) : [];
  return lacking.length || conflicts.length ? { lack: { lacking, conflicts } } : { vars };
}

function dedupe(list: { name: string; reason: string }[]): { name: string; reason: string }[] {
  const seen = new Map<string, { name: string; reason: string }>();
  for (const u of list) if (!seen.has(u.name)) seen.set(u.name, { name: u.name, reason: u.reason });
  return [...seen.values()];
}

/** "SITE (not set and no default)", "BROKER (selectors site=berlin, tier=edge disagree)". */
export function lackText(lack: DeviceLack): string {
  return [
    ...lack.lacking.map((l) => `${l.name} (${l.reason})`),
    ...lack.conflicts.map((c) => `${c.name} (conflict: ${c.candidates.map((s) => `selector ${s.selector}`).join(' and ')} give different values)`),
  ].join(', ');
}
