import { CronTime } from 'cron';
import type { MaintenanceWindow } from './spec.js';

/** How far ahead overlapping firings are chained. */
const CHAIN_HORIZON_MS = 24 * 3600_000;

export type WindowState = { open: true; closesAt: number } | { open: false; opensAt: number };

/**
 * Whether a maintenance window is open at `now` (ms). A window opens at each firing of its cron
 * expression (in its time zone) and stays open for its duration; firings that start while a
 * window is open extend it.
 */
export function windowState(window: MaintenanceWindow, now: number): WindowState {
  const cron = new CronTime(window.cron, window.tz);
  const next = (from: number): number => cron.getNextDateFrom(new Date(from), window.tz).toMillis();
  // Only a firing in (now - duration, now] can cover now, and the first one after now - duration is it if any is.
  const first = next(now - window.durationMs);
  if (first > now) return { open: false, opensAt: first };
  let closesAt = first + window.durationMs;
  // Overlapping firings (a window longer than the cron period) chain into one open stretch. The
  // chain stops a day ahead or after 100 firings (each costs a cron evaluation), so for an
  // always-open window closesAt is a lower bound; it is only shown, and recomputed every tick.
  for (let f = next(first), i = 0; f < closesAt && closesAt < now + CHAIN_HORIZON_MS && i < 100; f = next(f), i++) {
    closesAt = Math.max(closesAt, f + window.durationMs);
  }
  return { open: true, closesAt };
}
