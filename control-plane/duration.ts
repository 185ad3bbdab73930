const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `2m`, `24h`, `500ms`, or a bare number of seconds → milliseconds. */
export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new Error(`${what}: ${JSON.stringify(text)} is not a duration like 90s, 2m, 24h`);
  return Math.round(Number(m[1]) * UNITS[m[2] ?? 's']);
}
