import type { RawIssue } from './semantics.js';
import { parseTemplate } from './variables.js';

/**
 * Where a manifest may use variables. Compose substitutes `${VAR}` from the author's shell; Berth
 * substitutes per device, from the values operators set (control-plane/vars), when it signs the
 * device's document. So the published manifest keeps the text as written: `${…}` and `$$` alike.
 *
 * A variable may never widen privileges: the privilege policy checks the published manifest, so any
 * `$` in a key it governs (a device path, a bind source, a capability…) is refused, as is one in
 * what publish pins or names (image, name, version). Everywhere else a malformed reference is
 * refused here, with its path; a value Berth must read to validate (a duration, a size) fails the
 * schema as written, and parse adds why.
 */

/** Service keys the privilege policy governs (manifests/privileges.ts), or publish reads. */
const FIXED_SERVICE_KEYS = new Set(['image', 'privileged', 'devices', 'cap_add', 'group_add', 'volumes', 'network_mode', 'pid', 'ipc', 'sysctls', 'security_opt', 'ports']);
const FIXED_TOP_KEYS = new Set(['name', 'version']);

type Path = (string | number)[];

function fixedKey(path: Path): string | null {
  if (path.length === 1 && FIXED_TOP_KEYS.has(String(path[0]))) return String(path[0]);
  if (path.length >= 3 && path[0] === 'services' && FIXED_SERVICE_KEYS.has(String(path[2]))) return String(path[2]);
  return null;
}

/** Strings in a command's string form are split into words before substitution; a reference must stay one word. */
function inCommandString(path: Path): boolean {
  return path.length === 3 && path[0] === 'services' && (path[2] === 'command' || path[2] === 'entrypoint');
}

function checkString(value: string, path: Path, keyText: boolean): RawIssue[] {
  if (!value.includes('$')) return [];
  const key = keyText ? null : fixedKey(path);
  if (key !== null || keyText) {
    const what = key === 'image' || key === 'name' || key === 'version' ? `${key} is fixed when the manifest is published` : 'a variable may never widen privileges: the privilege policy governs this key';
    return [{ path, message: `${keyText ? 'key ' + JSON.stringify(value) + ': ' : ''}a $ is not allowed here (${what}); write the value` }];
  }
  const t = parseTemplate(value);
  if ('error' in t) return [{ path, message: t.error }];
  if (inCommandString(path)) {
    const spaced = t.parts.find((p) => 'name' in p && /[\s'"]/.test(p.source));
    if (spaced && 'source' in spaced) return [{ path, message: `${spaced.source}: a variable in a command string cannot hold spaces or quotes; write the command as a list` }];
  }
  return [];
}

/** Every problem with `$` in a raw manifest (before the schema), each with its path. Changes nothing. */
export function interpolationIssues(value: unknown, path: Path = []): RawIssue[] {
  if (typeof value === 'string') return checkString(value, path, false);
  if (Array.isArray(value)) return value.flatMap((v, i) => interpolationIssues(v, [...path, i]));
  if (typeof value === 'object' && value !== null) {
    return Object.entries(value).flatMap(([k, v]) => {
      const under = [...path, k];
      // Keys are never substituted; a `$` in a governed key (a sysctl name) would read differently after.
      const keyIssues = k.includes('$') && fixedKey(under) !== null ? checkString(k, under, true) : [];
      return [...keyIssues, ...interpolationIssues(v, under)];
    });
  }
  return [];
}

/** Whether a path (as in a schema issue) holds a variable reference, to explain a schema refusal. */
export function holdsVariable(raw: unknown, path: readonly PropertyKey[]): boolean {
  let v: unknown = raw;
  for (const seg of path) {
    if (typeof v !== 'object' || v === null) return false;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return typeof v === 'string' && /\$\{/.test(v.replaceAll('$$', ''));
}
