import { FLEET_BASELINE, formatPrivilege, lacking, type Allowance, type Privilege } from '../../manifests/privileges.js';
import { matchesSelector, type Selector } from '../selector.js';

/**
 * The privilege check of a rollout, pure: which target devices would get privileges that no
 * policy matching them grants, grouped by the set of policies that match (one grant, one answer).
 */

export interface PolicyRule {
  name: string;
  selector: Selector;
  allow: Allowance;
}

export interface TargetDevice {
  serial: string;
  labels: Record<string, string>;
}

export interface LackingGroup {
  devices: number;
  sample: string[];
  policies: string[];
  lacking: Privilege[];
  message: string;
}

const SAMPLE = 10;

function lackingText(lack: Privilege[]): string {
  return lack.map(formatPrivilege).join(', ');
}

/** "12 devices matching site=berlin lack devices=/dev/ttyUSB0 (no policy grants it)". */
function groupMessage(count: number, selector: string, policies: string[], lack: Privilege[]): string {
  const who = `${count} device${count === 1 ? '' : 's'}${selector ? ` matching ${selector}` : ''}`;
  const why = policies.length ? `policies ${policies.join(', ')} do not grant ${lack.length === 1 ? 'it' : 'them'}` : `no policy grants ${lack.length === 1 ? 'it' : 'them'}`;
  return `${who} ${count === 1 ? 'lacks' : 'lack'} ${lackingText(lack)} (${why})`;
}

export function checkPrivileges(privileges: Privilege[], devices: readonly TargetDevice[], policies: readonly PolicyRule[], selectorText: string): LackingGroup[] {
  if (!privileges.length) return [];
  const groups = new Map<string, { policies: string[]; serials: string[] }>();
  for (const d of devices) {
    const matching = policies.filter((p) => matchesSelector(p.selector, d.labels)).map((p) => p.name);
    const key = matching.join('\0');
    const g = groups.get(key) ?? { policies: matching, serials: [] };
    g.serials.push(d.serial);
    groups.set(key, g);
  }
  const byName = new Map(policies.map((p) => [p.name, p.allow]));
  const out: LackingGroup[] = [];
  for (const g of groups.values()) {
    const lack = lacking(privileges, [FLEET_BASELINE, ...g.policies.map((n) => byName.get(n) ?? {})]);
    if (!lack.length) continue;
    out.push({ devices: g.serials.length, sample: g.serials.sort().slice(0, SAMPLE), policies: g.policies, lacking: lack, message: groupMessage(g.serials.length, selectorText, g.policies, lack) });
  }
  return out.sort((a, b) => b.devices - a.devices || a.message.localeCompare(b.message));
}
