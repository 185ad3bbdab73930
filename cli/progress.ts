/**
 * Campaign progress as people read it: one bar per wave, counts by device state, the failing
 * devices. Pure (status in, text out) so the watch loop only decides when to redraw.
 */
import { palette as makePalette, truncate, type Palette } from './format.js';

export interface WaveProgress {
  /** 1-based. */
  index: number;
  /** Devices in this wave. */
  size: number;
  /** pending, rolling, soaking, paused, passed, failed, aborted, skipped. */
  state: string;
  /** Devices of the wave by state (the control plane's words: pending, updating, succeeded, failed…). */
  counts: Record<string, number>;
}

export interface FailingDevice {
  serial: string;
  /** 1-based wave the device failed in. */
  wave: number | null;
  error: string | null;
}

export interface CampaignProgress {
  id: string;
  manifest: string;
  /** draft, running, paused, completed, failed, aborted. */
  status: string;
  /** Why the campaign is paused, failed or aborted (the control plane's words). */
  statusReason: string | null;
  waves: WaveProgress[];
  failing: FailingDevice[];
}

export type Bucket = 'succeeded' | 'failed' | 'active' | 'pending';

const SUCCEEDED = new Set(['succeeded', 'success', 'healthy', 'done', 'updated', 'completed', 'complete']);
const FAILED = new Set(['failed', 'failure', 'timed-out', 'timeout', 'timedout', 'rolled-back', 'rolledback', 'error', 'unhealthy', 'revoked']);
const PENDING = new Set(['pending', 'waiting', 'queued', 'scheduled', 'not-started']);

/** Which part of a bar a device state fills; unknown states count as in progress. */
export function bucketOf(state: string): Bucket {
  const s = state.toLowerCase();
  if (SUCCEEDED.has(s)) return 'succeeded';
  if (FAILED.has(s)) return 'failed';
  if (PENDING.has(s)) return 'pending';
  return 'active';
}

export type CampaignOutcome = 'succeeded' | 'failed' | 'paused' | 'running';

/**
 * How a watch ends: 0 on completed, 1 on failed or aborted, 3 on paused (a failure rule tripped or
 * an operator paused it: it waits for a person, so a script should not wait forever); a draft or
 * running campaign keeps being watched.
 */
export function outcomeOf(state: string): CampaignOutcome {
  const s = state.toLowerCase();
  if (['completed', 'succeeded', 'done', 'complete'].includes(s)) return 'succeeded';
  if (['failed', 'aborted', 'cancelled', 'canceled', 'superseded'].includes(s)) return 'failed';
  if (s === 'paused') return 'paused';
  return 'running';
}

export const WATCH_EXIT: Record<Exclude<CampaignOutcome, 'running'>, number> = { succeeded: 0, failed: 1, paused: 3 };

/** Devices that left a campaign (superseded, or revoked before their turn) are in no bucket. */
const LEFT = new Set(['left', 'superseded']);

export function bucketCounts(counts: Record<string, number>): Record<Bucket, number> {
  const out: Record<Bucket, number> = { succeeded: 0, failed: 0, active: 0, pending: 0 };
  for (const [state, n] of Object.entries(counts)) if (!LEFT.has(state.toLowerCase())) out[bucketOf(state)] += n;
  return out;
}

/**
 * A bar of `width` cells: succeeded, failed, in progress, then pending. Cells are apportioned by
 * largest remainder so the bar is always exactly `width` wide and a lone failure still shows.
 */
export function renderBar(counts: Record<Bucket, number>, total: number, width: number, fancy: boolean, p: Palette): string {
  const order: Bucket[] = ['succeeded', 'failed', 'active', 'pending'];
  const cells: Record<Bucket, number> = { succeeded: 0, failed: 0, active: 0, pending: 0 };
  const denominator = Math.max(total, order.reduce((a, b) => a + counts[b], 0));
  if (denominator > 0) {
    const exact = order.map((b) => (counts[b] * width) / denominator);
    order.forEach((b, i) => (cells[b] = Math.floor(exact[i])));
    let left = width - order.reduce((a, b) => a + cells[b], 0);
    const byRemainder = order.map((b, i) => ({ b, r: exact[i] - Math.floor(exact[i]), nonzero: counts[b] > 0 && cells[b] === 0 }))
      .sort((x, y) => Number(y.nonzero) - Number(x.nonzero) || y.r - x.r);
    for (const { b } of byRemainder) {
      if (left <= 0) break;
      if (counts[b] > 0) {
        cells[b]++;
        left--;
      }
    }
    cells.pending += left;
  } else {
    cells.pending = width;
  }
  const paint = (color: (s: string) => string, ch: string, n: number) => (n > 0 ? color(ch.repeat(n)) : '');
  const glyph = fancy
    ? { succeeded: paint(p.green, '█', cells.succeeded), failed: paint(p.red, '█', cells.failed), active: paint(p.yellow, '▒', cells.active), pending: paint(p.dim, '░', cells.pending) }
    : { succeeded: '#'.repeat(cells.succeeded), failed: 'x'.repeat(cells.failed), active: '~'.repeat(cells.active), pending: '.'.repeat(cells.pending) };
  return `[${glyph.succeeded}${glyph.failed}${glyph.active}${glyph.pending}]`;
}

/** Errors can carry a log tail; a progress line shows only their first line. */
export function firstLine(text: string): string {
  return text.split('\n', 1)[0].trimEnd();
}

function countsText(counts: Record<string, number>): string {
  const parts = Object.entries(counts).filter(([, n]) => n > 0).map(([s, n]) => `${s} ${n}`);
  return parts.length ? parts.join(' · ') : '-';
}

export function stateColor(state: string, p: Palette): string {
  const o = outcomeOf(state);
  return o === 'succeeded' ? p.green(state) : o === 'failed' ? p.red(state) : p.yellow(state);
}

export interface RenderOptions {
  fancy: boolean;
  width?: number;
  maxFailing?: number;
}

/** The whole progress block: a header, one bar line per wave, and the failing devices. */
export function renderProgress(c: CampaignProgress, opts: RenderOptions): string {
  const p = makePalette(opts.fancy);
  const width = opts.width ?? 24;
  const lines = [`campaign ${c.id}  ${c.manifest}  ${stateColor(c.status, p)}${c.statusReason ? ` (${c.statusReason})` : ''}`];
  const sizeWidth = Math.max(1, ...c.waves.map((w) => String(w.size).length));
  for (const w of c.waves) {
    const b = bucketCounts(w.counts);
    const bar = renderBar(b, w.size, width, opts.fancy, p);
    const done = `${String(b.succeeded).padStart(sizeWidth)}/${String(w.size).padEnd(sizeWidth)}`;
    lines.push(`  wave ${w.index}  ${bar}  ${done}  ${w.state.padEnd(9)} ${countsText(w.counts)}`.trimEnd());
  }
  const maxFailing = opts.maxFailing ?? 5;
  if (c.failing.length) {
    lines.push(`  failing (${c.failing.length}):`);
    for (const f of c.failing.slice(0, maxFailing)) lines.push(`    ${f.serial}${f.wave !== null ? `  wave ${f.wave}` : ''}${f.error ? `  ${truncate(firstLine(f.error), 100)}` : ''}`);
    if (c.failing.length > maxFailing) lines.push(`    … and ${c.failing.length - maxFailing} more (berth campaign status ${c.id} --output json)`);
  }
  return lines.join('\n');
}

/**
 * One plain line for logs and pipes (no TTY): printed only when it changes, so a watched campaign
 * reads as a short history rather than a wall of repeats.
 */
export function renderProgressLine(c: CampaignProgress): string {
  const waves = c.waves.map((w) => {
    const b = bucketCounts(w.counts);
    return `w${w.index} ${b.succeeded}/${w.size}${b.failed ? ` (${b.failed} failed)` : ''}`;
  });
  return `campaign ${c.id} ${c.status}: ${waves.join(', ')}`;
}
