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
