import type { RawIssue } from './semantics.js';

/**
 * Compose substitutes `${VAR}` and `$VAR` from the author's shell in every string value, and reads
 * `$$` as a literal `$`. A gateway has no such environment, and substituting nothing would change the
 * file's meaning silently, so variables are refused; `$$` still means `$`, so a Compose file that runs
 * `sh -c 'echo $$HOME'` means the same thing here.
 */
const VARIABLE = /\$(?:\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*)/;

export function unescapeDollars(value: unknown, path: (string | number)[] = []): { value: unknown; issues: RawIssue[] } {
  if (typeof value === 'string') {
    const issues: RawIssue[] = [];
    const parts = value.split('$$');
    for (const part of parts) {
      const m = VARIABLE.exec(part);
      if (m) {
        issues.push({ path, message: `variable ${m[0]} is not supported: Berth has no host environment to substitute; write the value, or $$ for a literal $` });
        break;
      }
    }
    return { value: parts.join('$'), issues };
  }
  if (Array.isArray(value)) {
    const issues: RawIssue[] = [];
    const out = value.map((v, i) => {
      const r = unescapeDollars(v, [...path, i]);
      issues.push(...r.issues);
      return r.value;
    });
    return { value: out, issues };
  }
  if (typeof value === 'object' && value !== null) {
    const issues: RawIssue[] = [];
    const out = Object.fromEntries(
      Object.entries(value).map(([k, v]) => {
        const r = unescapeDollars(v, [...path, k]);
        issues.push(...r.issues);
        return [k, r.value];
      }),
    );
    return { value: out, issues };
  }
  return { value, issues: [] };
}
