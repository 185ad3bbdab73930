import { matchesSelector, parseSelector, type Selector } from './selector.js';

/**
 * Which of a name's scoped values a device gets, shared by variables and secrets, pure: its
 * device-scoped value, else the selector-scoped value whose selector matches it, else the fleet's.
 * Two matching selector values are a conflict, never a silent pick, unless `agree` says they are
 * the same (variables compare their values; sealed secrets cannot, so any two conflict).
 */

export type ValueScope = 'device' | 'selector' | 'fleet';

export interface ScopedValue {
  scope: ValueScope;
  /** Device id, selector text, or '' for the fleet. */
  target: string;
  /** The target parsed, when the caller has it already; otherwise it is parsed here. */
  selector?: Selector;
}

export type ScopedPick<T> = { kind: 'value'; rule: T } | { kind: 'missing' } | { kind: 'conflict'; rules: T[] };

export function pickScoped<T extends ScopedValue>(rules: readonly T[], device: { id: string; labels: Record<string, string> }, agree: (a: T, b: T) => boolean = () => false): ScopedPick<T> {
  const own = rules.find((r) => r.scope === 'device' && r.target === device.id);
  if (own) return { kind: 'value', rule: own };
  const matched = rules.filter((r) => r.scope === 'selector' && matchesSelector(r.selector ?? parseSelector(r.target), device.labels));
  if (matched.slice(1).some((r) => !agree(r, matched[0]))) return { kind: 'conflict', rules: matched };
  if (matched.length) return { kind: 'value', rule: matched[0] };
  const fleet = rules.find((r) => r.scope === 'fleet');
  return fleet ? { kind: 'value', rule: fleet } : { kind: 'missing' };
}
