import type { Manifest } from './model.js';
import { parseCapability } from './forms.js';

/**
 * A manifest's privileges: every key that reaches beyond a plain container, normalized to
 * `KEY=VALUE` so the control plane (policies), the gateway (its local ceiling) and the CLI compute
 * and compare them the same way. Pure: no I/O, no clock.
 *
 * The grammar of a grant (`berth policies set --allow`, the daemon's `--allow FILE`) is the same
 * `KEY=VALUE[,VALUE…]`: paths take globs (`*` within a path segment, `**` across segments),
 * capabilities and groups are exact names, ports take numbers, ranges (`8000-8100`), `ephemeral`
 * or `*`, each optionally `/udp` or `/tcp`.
 */

export const PRIVILEGE_KEYS = ['privileged', 'devices', 'cap_add', 'group_add', 'binds', 'network_mode', 'pid', 'ipc', 'sysctls', 'security_opt', 'ports'] as const;
export type PrivilegeKey = (typeof PRIVILEGE_KEYS)[number];

export interface Privilege {
  key: PrivilegeKey;
  value: string;
  /** The services that ask for it, sorted. */
  services: string[];
}

/** What a grant allows, per key; a key left out allows nothing of its kind. */
export type Allowance = Partial<Record<PrivilegeKey, string[]>>;

/**
 * Every fleet grants these without a policy: host networking was Berth's default before manifests
 * could ask for more, so a manifest that ran before issue 12 still needs no policy. Listed all the same.
 */
export const FLEET_BASELINE: Allowance = { network_mode: ['host'] };

/** `devices=/dev/ttyUSB0`. */
export function formatPrivilege(p: Pick<Privilege, 'key' | 'value'>): string {
  return `${p.key}=${p.value}`;
}

/** The privileges a manifest asks for, sorted by key order then value, each with the services that ask. */
export function privilegesOf(m: Manifest): Privilege[] {
  const found = new Map<string, Privilege>();
  const add = (key: PrivilegeKey, value: string, service: string) => {
    const id = `${key}=${value}`;
    const p = found.get(id) ?? { key, value, services: [] };
    if (!p.services.includes(service)) p.services.push(service);
    found.set(id, p);
  };
  for (const [name, s] of Object.entries(m.services)) {
    if (s.privileged) add('privileged', 'true', name);
    for (const d of s.devices ?? []) add('devices', d.source, name);
    for (const c of s.capAdd ?? []) add('cap_add', c, name);
    for (const g of s.groupAdd ?? []) add('group_add', g, name);
    for (const b of s.binds ?? []) add('binds', b.readOnly ? `${b.source}:ro` : b.source, name);
    if (s.networkMode === 'host') add('network_mode', 'host', name);
    if (s.pid === 'host') add('pid', 'host', name);
    if (s.ipc === 'host') add('ipc', 'host', name);
    for (const k of Object.keys(s.sysctls ?? {})) add('sysctls', k, name);
    for (const o of s.securityOpt ?? []) if (!o.startsWith('no-new-privileges')) add('security_opt', o, name);
    for (const p of s.ports ?? []) add('ports', `${p.published ?? 'ephemeral'}${p.protocol === 'udp' ? '/udp' : ''}`, name);
  }
  const rank = (k: PrivilegeKey) => PRIVILEGE_KEYS.indexOf(k);
  return [...found.values()]
    .map((p) => ({ ...p, services: p.services.sort() }))
    .sort((a, b) => rank(a.key) - rank(b.key) || a.value.localeCompare(b.value, 'en', { numeric: true }));
}

/** A glob over paths: `*` and `?` stay within a segment, `**` crosses them. */
function globRegExp(glob: string, segment = '/'): RegExp {
  const seg = segment === '/' ? '[^/]' : '.';
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += `${seg}*`;
    else if (c === '?') re += seg;
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

function portMatches(allow: string, value: string): boolean {
  const [range, proto] = allow.split('/');
  const [port, vproto = 'tcp'] = value.split('/');
  if (proto !== undefined && proto !== vproto) return false;
  if (range === '*') return true;
  if (range === 'ephemeral' || port === 'ephemeral') return range === port;
  const [from, to = from] = range.split('-').map(Number);
  return Number(port) >= from && Number(port) <= to;
}

function bindMatches(allow: string, value: string): boolean {
  const ro = (s: string) => s.endsWith(':ro');
  const path = (s: string) => (ro(s) ? s.slice(0, -3) : s);
  // An allowance without :ro allows read-write and read-only; with :ro, read-only only.
  if (ro(allow) && !ro(value)) return false;
  return globRegExp(path(allow)).test(path(value));
}

/** Whether one allowed value covers one privilege value of its key. */
export function allows(key: PrivilegeKey, allowed: string, value: string): boolean {
  switch (key) {
    case 'devices':
      return globRegExp(allowed).test(value);
    case 'binds':
      return bindMatches(allowed, value);
    case 'ports':
      return portMatches(allowed, value);
    case 'sysctls':
      return globRegExp(allowed, '').test(value);
    default:
      return allowed === value;
  }
}

/** The privileges that no allowance grants (union of the allowances: a device's policies, or a ceiling). */
export function lacking(privileges: readonly Privilege[], allowances: readonly Allowance[]): Privilege[] {
  return privileges.filter((p) => !allowances.some((a) => (a[p.key] ?? []).some((v) => allows(p.key, v, p.value))));
}

const KEY_HELP = `one of ${PRIVILEGE_KEYS.join(', ')}`;

/** Checks one allowed value of a key; returns the normalized value or why it is wrong. */
function allowValue(key: PrivilegeKey, raw: string): { value: string } | { error: string } {
  const v = raw.trim();
  const bad = (what: string) => ({ error: `${key}=${v}: expected ${what}` });
  switch (key) {
    case 'privileged':
      return v === 'true' ? { value: v } : bad('true (or privileged alone)');
    case 'network_mode':
    case 'pid':
    case 'ipc':
      return v === 'host' ? { value: v } : bad('host');
    case 'devices':
      return v.startsWith('/') ? { value: v } : bad('an absolute path or glob like /dev/ttyUSB*');
    case 'binds':
      return v.startsWith('/') && !v.split('/').includes('..') ? { value: v } : bad('an absolute gateway path or glob, optionally :ro, like /etc/localtime:ro');
    case 'cap_add': {
      const c = parseCapability(v);
      return 'error' in c ? { error: `${key}=${v}: ${c.error}` } : { value: c.value };
    }
    case 'ports':
      return /^(\*|ephemeral|\d{1,5}(-\d{1,5})?)(\/(tcp|udp))?$/.test(v) ? { value: v } : bad('a port, a range like 8000-8100, ephemeral or *, optionally /udp or /tcp');
    case 'sysctls':
      return /^[a-z0-9_.*-]+$/i.test(v) ? { value: v } : bad('a sysctl name or glob like net.ipv4.*');
    default:
      return v ? { value: v } : bad('a value');
  }
}

/**
 * Parses grant entries `KEY=VALUE[,VALUE…]` (a bare `privileged` means `privileged=true`). Lines that
 * are empty or start with `#` are skipped, so the same function reads a gateway's `--allow` file.
 */
export function parseAllowance(entries: readonly string[]): { allow: Allowance } | { errors: string[] } {
  const allow: Allowance = {};
  const errors: string[] = [];
  entries.forEach((line, i) => {
    const text = line.trim();
    if (!text || text.startsWith('#')) return;
    const eq = text.indexOf('=');
    const key = (eq < 0 ? text : text.slice(0, eq)).trim();
    const values = eq < 0 ? (key === 'privileged' ? ['true'] : []) : text.slice(eq + 1).split(',');
    const where = entries.length > 1 ? `entry ${i + 1}: ` : '';
    if (!(PRIVILEGE_KEYS as readonly string[]).includes(key)) {
      const note = key === 'tmpfs' ? ' (tmpfs is memory inside the container, not a privilege: every manifest may use it)' : '';
      errors.push(`${where}unknown key ${JSON.stringify(key)}${note}: expected ${KEY_HELP}`);
      return;
    }
    if (!values.length) {
      errors.push(`${where}${key}: expected ${key}=VALUE[,VALUE…]`);
      return;
    }
    const k = key as PrivilegeKey;
    for (const raw of values) {
      const r = allowValue(k, raw);
      if ('error' in r) errors.push(`${where}${r.error}`);
      else if (!(allow[k] ??= []).includes(r.value)) allow[k].push(r.value);
    }
  });
  return errors.length ? { errors } : { allow };
}

/** `KEY=V1,V2` per key, in key order (how a grant is shown and stored). */
export function formatAllowance(a: Allowance): string[] {
  return PRIVILEGE_KEYS.filter((k) => a[k]?.length).map((k) => `${k}=${a[k]!.join(',')}`);
}
