import { sql } from 'drizzle-orm';
import type { Manifest } from '../../manifests/model.js';
import { variableNeeds, type VariableNeed } from '../../manifests/variables.js';
import type { Reader } from '../campaigns/store.js';
import { formatSelector, parseSelector, selectorCondition } from '../selector.js';
import { effectiveValues, lackText, resolveForManifest, type DeviceLack, type VariableRule } from './resolve.js';
import { loadRules } from './store.js';

/** One group of target devices that lack the same variables (or hit the same conflict). */
export interface VariableGroup {
  devices: number;
  /** Up to 10 serials. */
  sample: string[];
  lacking: DeviceLack['lacking'];
  conflicts: DeviceLack['conflicts'];
  /** "2 devices lack SITE (not set and no default): GW-1, GW-2". */
  message: string;
}

export interface VariablesCheck {
  manifest: string;
  selector: string;
  needs: VariableNeed[];
  devices: number;
  ok: boolean;
  groups: VariableGroup[];
}

const SAMPLE = 10;

/** Pure: which devices cannot be given the manifest, grouped by what they lack. */
export function groupLacking(spec: unknown, needs: VariableNeed[], rules: readonly VariableRule[], devices: readonly { id: string; serial: string; labels: Record<string, string> }[]): VariableGroup[] {
  if (!needs.length) return [];
  const groups = new Map<string, { lack: DeviceLack; serials: string[] }>();
  for (const d of devices) {
    const r = resolveForManifest(spec, needs, effectiveValues(rules, d));
    if (!('lack' in r)) continue;
    const key = lackText(r.lack);
    const g = groups.get(key) ?? { lack: r.lack, serials: [] };
    g.serials.push(d.serial);
    groups.set(key, g);
  }
  return [...groups.entries()]
    .map(([text, g]) => {
      const serials = g.serials.sort();
      const n = serials.length;
      const more = n > SAMPLE ? `, … (${n - SAMPLE} more)` : '';
      return { devices: n, sample: serials.slice(0, SAMPLE), ...g.lack, message: `${n} device${n === 1 ? '' : 's'} ${n === 1 ? 'lacks' : 'lack'} ${text}: ${serials.slice(0, SAMPLE).join(', ')}${more}` };
    })
    .sort((a, b) => b.devices - a.devices || a.message.localeCompare(b.message));
}

/** The variables half of the up-front rollout check (vars/rollout.ts runs it after the privilege check). */
export async function checkVariables(db: Reader, release: string, spec: Manifest, selectorText: string, onlyDevice?: string): Promise<VariablesCheck> {
  const selector = parseSelector(selectorText);
  const needs = variableNeeds(spec);
  const devices = needs.length
    ? (
        await db.all<{ id: string; serial: string; labels: string }>(sql`SELECT d.id, d.serial, d.labels FROM devices d
          WHERE d.status <> 'revoked' AND ${selectorCondition(selector, sql`d.labels`)} ${onlyDevice === undefined ? sql`` : sql`AND d.id = ${onlyDevice}`}`)
      ).map((r) => ({ ...r, labels: JSON.parse(r.labels) as Record<string, string> }))
    : [];
  const groups = needs.length ? groupLacking(spec, needs, await loadRules(db), devices) : [];
  return { manifest: release, selector: formatSelector(selector), needs, devices: devices.length, ok: groups.length === 0, groups };
}
