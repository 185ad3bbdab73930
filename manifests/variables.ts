/**
 * Compose's interpolation grammar, as Berth reads it: `${NAME}`, `${NAME:-default}`, `${NAME-default}`,
 * `${NAME:?message}`, `${NAME?message}`, `${NAME:+alt}`, `${NAME+alt}`, and `$$` for a literal `$`.
 * A published manifest keeps this text (the escaped form); the control plane substitutes each
 * device's values when it signs the device's document. Pure: no I/O.
 *
 * Not supported, refused by name at publish: `$NAME` without braces (a shell habit that Compose
 * would read as a variable; ambiguous enough to ask for braces) and nested references in a default.
 */

export const VARIABLE_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `-`/`?`/`+` test "unset"; with a colon, "unset or empty" (Compose's rule). */
export type VariableOp = '' | '-' | ':-' | '?' | ':?' | '+' | ':+';

export type TemplatePart = { text: string } | { name: string; op: VariableOp; arg: string; source: string };

/**
 * Splits a string into literal text and references; `$$` becomes `$` in the text parts. `lenient`
 * (substitution at signing) keeps what publish would refuse as literal text: manifests published
 * before variables existed hold `$HOME` for what their author wrote as `$$HOME`.
 */
export function parseTemplate(value: string, lenient = false): { parts: TemplatePart[] } | { error: string } {
  const parts: TemplatePart[] = [];
  let text = '';
  let i = 0;
  while (i < value.length) {
    const c = value[i];
    if (c !== '$') {
      text += c;
      i++;
      continue;
    }
    const next = value[i + 1];
    if (next === '$') {
      text += '$';
      i += 2;
      continue;
    }
    if (next === '{') {
      const end = value.indexOf('}', i + 2);
      if (end < 0 && lenient) {
        text += value.slice(i);
        break;
      }
      if (end < 0) return { error: `unterminated ${value.slice(i)}: expected \${NAME}, \${NAME:-default} or \${NAME:?message}` };
      const body = value.slice(i + 2, end);
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([\s\S]*))?$/.exec(body);
      const argText = m ? parseTemplate(m[3] ?? '') : { parts: [] };
      const nested = 'error' in argText || argText.parts.some((p) => 'name' in p);
      if ((!m || nested) && lenient) {
        text += value.slice(i, end + 1);
        i = end + 1;
        continue;
      }
      if (!m) return { error: `\${${body}} is not a variable reference: expected \${NAME}, \${NAME:-default} or \${NAME:?message} (NAME: letters, digits, _)` };
      if (nested) return { error: `\${${body}}: a default, message or alternative cannot hold another variable (write $$ for a literal $)` };
      if (text) parts.push({ text });
      text = '';
      parts.push({ name: m[1], op: (m[2] ?? '') as VariableOp, arg: 'parts' in argText ? argText.parts.map((p) => ('text' in p ? p.text : '')).join('') : '', source: value.slice(i, end + 1) });
      i = end + 1;
      continue;
    }
    if (next !== undefined && /[A-Za-z_]/.test(next) && !lenient) {
      const name = /^[A-Za-z_][A-Za-z0-9_]*/.exec(value.slice(i + 1))![0];
      return { error: `$${name}: write \${${name}} for a Berth variable, or $$${name} for a literal $ (for the container's shell)` };
    }
    // A lone `$` (end of string, before a space or a digit) means itself, as in Compose.
    text += '$';
    i++;
  }
  if (text) parts.push({ text });
  return { parts };
}

/** One reference to a variable somewhere in a manifest. */
export interface VariableUse {
  name: string;
  op: VariableOp;
  arg: string;
  /** Where: `services.web.environment.SITE`. */
  path: string;
}

/** What a manifest needs of a variable, over all its uses: published and shown with the manifest. */
export interface VariableNeed {
  name: string;
  /** True when some use fails without a value (`${X}`, `${X?…}`, `${X:?…}`). */
  required: boolean;
  /** The default of a `${X:-d}`/`${X-d}` use, when one is written. */
  default?: string;
  /** The message of a `${X:?m}` use. */
  message?: string;
  paths: string[];
}

type Segment = string | number;

function joinPath(path: readonly Segment[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : /^[A-Za-z0-9_-]+$/.test(seg) ? (out ? '.' : '') + seg : `[${JSON.stringify(seg)}]`;
  return out;
}

/** Visits every string value (never a map key) with its path. */
function eachString(value: unknown, visit: (s: string, path: Segment[]) => void, path: Segment[] = []): void {
  if (typeof value === 'string') visit(value, path);
  else if (Array.isArray(value)) value.forEach((v, i) => eachString(v, visit, [...path, i]));
  else if (typeof value === 'object' && value !== null) for (const [k, v] of Object.entries(value)) eachString(v, visit, [...path, k]);
}

/** Every reference in a (published, escaped-form) manifest. Throws on a malformed one: parse refuses those. */
export function variableUses(manifest: unknown): VariableUse[] {
  const uses: VariableUse[] = [];
  eachString(manifest, (s, path) => {
    if (!s.includes('$')) return;
    const t = parseTemplate(s);
    if ('error' in t) throw new Error(`${joinPath(path)}: ${t.error}`);
    for (const p of t.parts) if ('name' in p) uses.push({ name: p.name, op: p.op, arg: p.arg, path: joinPath(path) });
  });
  return uses;
}

/** The variables a manifest needs, by name. */
export function variableNeeds(manifest: unknown): VariableNeed[] {
  const byName = new Map<string, VariableNeed>();
  for (const u of variableUses(manifest)) {
    const n = byName.get(u.name) ?? { name: u.name, required: false, paths: [] };
    if (u.op === '' || u.op === '?' || u.op === ':?') n.required = true;
    if ((u.op === '-' || u.op === ':-') && n.default === undefined) n.default = u.arg;
    if (u.op === ':?' && u.arg && n.message === undefined) n.message = u.arg;
    if (!n.paths.includes(u.path)) n.paths.push(u.path);
    byName.set(u.name, n);
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** A reference that cannot be substituted with the values given. */
export interface UnresolvedVariable {
  name: string;
  path: string;
  /** "not set" or the `:?` message. */
  reason: string;
}

function resolvePart(p: Extract<TemplatePart, { name: string }>, values: Readonly<Record<string, string>>): string | { reason: string } {
  const set = Object.hasOwn(values, p.name);
  const v = set ? values[p.name] : undefined;
  const present = p.op.startsWith(':') ? set && v !== '' : set;
  switch (p.op) {
    case '':
      return set ? (v as string) : { reason: 'not set and no default' };
    case '-':
    case ':-':
      return present ? (v as string) : p.arg;
    case '?':
    case ':?':
      return present ? (v as string) : { reason: p.arg || (p.op === ':?' ? 'not set or empty' : 'not set') };
    case '+':
    case ':+':
      return present ? p.arg : '';
  }
}

/** One string with the values substituted, or what is missing. */
export function substituteString(s: string, values: Readonly<Record<string, string>>): { value: string } | { missing: { name: string; reason: string }[] } {
  if (!s.includes('$')) return { value: s };
  const t = parseTemplate(s, true);
  if ('error' in t) throw new Error(t.error);
  let out = '';
  const missing: { name: string; reason: string }[] = [];
  for (const p of t.parts) {
    if ('text' in p) out += p.text;
    else {
      const r = resolvePart(p, values);
      if (typeof r === 'string') out += r;
      else missing.push({ name: p.name, reason: r.reason });
    }
  }
  return missing.length ? { missing } : { value: out };
}

/**
 * The manifest a device runs: every string value with `values` substituted and `$$` read as `$`.
 * Map keys are never substituted (Compose does not either). All unresolved references are
 * reported together, so a refusal names every variable a device lacks.
 */
export function substituteVariables<T>(manifest: T, values: Readonly<Record<string, string>>): { value: T } | { unresolved: UnresolvedVariable[] } {
  const unresolved: UnresolvedVariable[] = [];
  const walk = (v: unknown, path: Segment[]): unknown => {
    if (typeof v === 'string') {
      const r = substituteString(v, values);
      if ('value' in r) return r.value;
      for (const m of r.missing) unresolved.push({ name: m.name, path: joinPath(path), reason: m.reason });
      return v;
    }
    if (Array.isArray(v)) return v.map((x, i) => walk(x, [...path, i]));
    if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, [...path, k])]));
    return v;
  };
  const value = walk(manifest, []) as T;
  return unresolved.length ? { unresolved } : { value };
}
