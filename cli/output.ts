/**
 * `-o yaml` and `-o name` for every verb, made from the JSON a verb prints for `-o json`: each verb
 * keeps one machine shape (cli/README.md), and these are views of it. Pure, so unit-tested.
 */
import { stringify } from 'yaml';

/**
 * What identifies one object: a device's serial, a manifest's name@version, else its id or name;
 * a device's report (`devices history`), which has none of these, by the release it ran.
 */
export function nameOf(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null) return typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.serial === 'string') return o.serial;
  if (typeof o.name === 'string' && typeof o.version === 'string') return `${o.name}@${o.version}`;
  for (const k of ['id', 'name', 'kid', 'release', 'running']) if (typeof o[k] === 'string' || typeof o[k] === 'number') return String(o[k]);
  return undefined;
}

/** One name a line; a list wrapped in an object (`{entries: […]}`) is unwrapped. */
export function namesOf(v: unknown): string[] {
  if (Array.isArray(v)) return v.map(nameOf).filter((n): n is string => n !== undefined);
  const own = nameOf(v);
  if (own !== undefined) return [own];
  if (typeof v === 'object' && v !== null) {
    // A twin names its device; an answer wrapping one list of objects names each of them.
    const device = nameOf((v as Record<string, unknown>).device);
    if (device !== undefined) return [device];
    const lists = Object.values(v).filter((x): x is unknown[] => Array.isArray(x) && x.length > 0 && x.every((e) => typeof e === 'object' && e !== null));
    if (lists.length === 1) return namesOf(lists[0]);
  }
  return [];
}

/** The text a verb printed as JSON, shown as `format` asks; text that is not JSON passes as it is. */
export function reshape(text: string, format: 'yaml' | 'name'): string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return text;
  }
  return format === 'yaml' ? stringify(value).trimEnd() : namesOf(value).join('\n');
}
