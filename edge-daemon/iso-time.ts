/**
 * `new Date(ms).toISOString()`, from the UTC getters. V8's toISOString and toUTCString set up its
 * date cache, which loads ICU's time-zone data: 0.6 MiB more of the `node` binary resident for the
 * daemon's life, for a timestamp in UTC (issue 11; the UTC getters leave it alone). The same text
 * for years 0–9999; anything else goes to toISOString (extended years, or its RangeError).
 */
export function isoTime(ms: number = Date.now()): string {
  const d = new Date(ms);
  const year = d.getUTCFullYear();
  if (!(year >= 0 && year <= 9999)) return d.toISOString();
  const p = (n: number, width = 2): string => String(n).padStart(width, '0');
  return `${p(year, 4)}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())}T${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}.${p(d.getUTCMilliseconds(), 3)}Z`;
}
