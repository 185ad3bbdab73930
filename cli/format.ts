/** Plain-text rendering for people: aligned tables, key/value blocks, relative times. */
import { ESC } from './terminal-safe.js';

export interface Column<T> {
  header: string;
  get: (row: T) => string;
  align?: 'left' | 'right';
}

const OWN_SGR = new RegExp(`${ESC}\\[[0-9;]*m`, 'g');

/** Width of a string as a terminal shows it: ANSI escapes take no room. */
export function visibleWidth(s: string): number {
  // eslint-disable-next-line no-control-regex
  return [...s.replace(OWN_SGR, '').replace(/\x1b\[[0-9;]*m/g, '')].length;
}

function pad(s: string, width: number, align: 'left' | 'right'): string {
  const fill = ' '.repeat(Math.max(0, width - visibleWidth(s)));
  return align === 'right' ? fill + s : s + fill;
}

/** Columns separated by two spaces, headers in capitals, no trailing blanks; cells never wrap. */
export function renderTable<T>(columns: Column<T>[], rows: T[]): string {
  const cells = rows.map((r) => columns.map((c) => oneLine(c.get(r))));
  const widths = columns.map((c, i) => Math.max(visibleWidth(c.header), ...cells.map((row) => visibleWidth(row[i]))));
  const line = (values: string[]) =>
    values
      .map((v, i) => (i === values.length - 1 && (columns[i].align ?? 'left') === 'left' ? v : pad(v, widths[i], columns[i].align ?? 'left')))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header.toUpperCase())), ...cells.map(line)].join('\n');
}

/** "key:   value" lines with aligned values. */
export function renderFields(fields: [string, string][]): string {
  const width = Math.max(0, ...fields.map(([k]) => k.length)) + 1;
  return fields.map(([k, v]) => `${(k + ':').padEnd(width + 1)}${v}`.trimEnd()).join('\n');
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ⏎ ');
}

export function truncate(s: string, max: number): string {
  return [...s].length <= max ? s : [...s].slice(0, Math.max(0, max - 1)).join('') + '…';
}

export function formatLabels(labels: Record<string, string> | undefined): string {
  const entries = Object.entries(labels ?? {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(',') : '-';
}

/** "3m ago", "in 2h", "-" for none; `now` passed in to keep this pure. */
export function formatAgo(iso: string | null | undefined, now: Date): string {
  if (!iso) return '-';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return iso;
  const diff = now.getTime() - t;
  const abs = Math.abs(diff);
  const unit = abs < 60_000 ? `${Math.round(abs / 1000)}s` : abs < 3_600_000 ? `${Math.round(abs / 60_000)}m` : abs < 86_400_000 ? `${Math.round(abs / 3_600_000)}h` : `${Math.round(abs / 86_400_000)}d`;
  return diff >= 0 ? `${unit} ago` : `in ${unit}`;
}

export function shortDigest(digest: string | null | undefined): string {
  if (!digest) return '-';
  const m = /^(sha256:)([0-9a-f]{12})[0-9a-f]*$/.exec(digest);
  return m ? m[1] + m[2] : digest;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/**
 * An update's bytes as the twin holds them: progress as "done/total", and once layer deltas carried
 * it, against what the layers weigh in full: "1.6 MiB of 47 MiB (delta)" when done.
 */
export function formatUpdateBytes(b: { done: number; total: number; full?: number; delta?: boolean }): string {
  if (b.delta && b.full !== undefined) return `${b.done >= b.total ? formatBytes(b.done) : `${formatBytes(b.done)}/${formatBytes(b.total)}`} of ${formatBytes(b.full)} (delta)`;
  return `${formatBytes(b.done)}/${formatBytes(b.total)}`;
}

export interface Palette {
  green: (s: string) => string;
  red: (s: string) => string;
  yellow: (s: string) => string;
  dim: (s: string) => string;
  bold: (s: string) => string;
}

// The CLI's own escapes are markers until output (cli/terminal-safe.ts): a device's ESC never passes as one.
const sgr = (code: string) => (s: string) => `${ESC}[${code}m${s}${ESC}[0m`;
const plain = (s: string) => s;

/** Colours only on a terminal and only without NO_COLOR (https://no-color.org). */
export function palette(enabled: boolean): Palette {
  return enabled
    ? { green: sgr('32'), red: sgr('31'), yellow: sgr('33'), dim: sgr('2'), bold: sgr('1') }
    : { green: plain, red: plain, yellow: plain, dim: plain, bold: plain };
}

export function colorEnabled(isTTY: boolean | undefined, env: NodeJS.ProcessEnv): boolean {
  return isTTY === true && (env.NO_COLOR === undefined || env.NO_COLOR === '') && env.TERM !== 'dumb';
}
