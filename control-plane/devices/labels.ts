import { z } from 'zod';

/** Kubernetes-style label keys (optional DNS prefix + name) and values. */
const KEY = /^(?:[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const VALUE = /^(?:[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

export const labelsSchema = z.record(
  z.string().regex(KEY, 'label key: up to 63 of A-Z a-z 0-9 - _ . (optional prefix/)'),
  z.string().regex(VALUE, 'label value: up to 63 of A-Z a-z 0-9 - _ .'),
);

/** `k=v;k=v` as manufacturers' CSV files write labels. */
export function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(';')) {
    const p = part.trim();
    if (!p) continue;
    const eq = p.indexOf('=');
    if (eq <= 0) throw new Error(`${JSON.stringify(p)} is not key=value`);
    const key = p.slice(0, eq).trim();
    if (key in out) throw new Error(`label ${key} given twice`);
    out[key] = p.slice(eq + 1).trim();
  }
  return out;
}
