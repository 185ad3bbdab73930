import { showValue } from '../../common/grammar.js';

/** `k=v;k=v` as manufacturers' CSV files write labels. */
export function parseLabels(text: string): Record<string, string> {
  // A Map, not `key in {}`: `constructor` or `toString` are label keys like any other (issue 14, finding 13).
  const out = new Map<string, string>();
  for (const part of text.split(';')) {
    const p = part.trim();
    if (!p) continue;
    const eq = p.indexOf('=');
    if (eq <= 0) throw new Error(`${showValue(p)} is not key=value`);
    const key = p.slice(0, eq).trim();
    if (out.has(key)) throw new Error(`label ${key.length > 200 ? showValue(key) : key} given twice`);
    out.set(key, p.slice(eq + 1).trim());
  }
  return Object.fromEntries(out);
}
