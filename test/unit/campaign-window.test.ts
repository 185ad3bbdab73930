import { describe, expect, it } from 'vitest';
import { windowState } from '../../control-plane/campaigns/window.js';

const MIN = 60_000;
const at = (iso: string) => Date.parse(iso);

describe('windowState', () => {
  const berlinNights = { cron: '0 2 * * *', durationMs: 120 * MIN, tz: 'Europe/Berlin' };

  it('opens at the cron firing in the window time zone (winter, UTC+1)', () => {
    expect(windowState(berlinNights, at('2026-11-26T00:59:59Z'))).toEqual({ open: false, opensAt: at('2026-11-26T01:00:00Z') });
    expect(windowState(berlinNights, at('2026-11-26T01:00:00Z'))).toEqual({ open: true, closesAt: at('2026-11-26T03:00:00Z') });
    expect(windowState(berlinNights, at('2026-11-26T02:59:59Z'))).toEqual({ open: true, closesAt: at('2026-11-26T03:00:00Z') });
    expect(windowState(berlinNights, at('2026-11-26T03:00:00Z'))).toEqual({ open: false, opensAt: at('2026-11-27T01:00:00Z') });
  });

  it('follows daylight saving time (summer, UTC+2)', () => {
    expect(windowState(berlinNights, at('2026-07-01T00:30:00Z'))).toEqual({ open: true, closesAt: at('2026-07-01T02:00:00Z') });
    expect(windowState(berlinNights, at('2026-07-01T02:00:00Z'))).toEqual({ open: false, opensAt: at('2026-07-02T00:00:00Z') });
  });

  it('reads the same expression differently in another zone', () => {
    const tokyo = { ...berlinNights, tz: 'Asia/Tokyo' };
    expect(windowState(tokyo, at('2026-11-25T17:30:00Z'))).toEqual({ open: true, closesAt: at('2026-11-25T19:00:00Z') });
  });

  it('honours weekday fields (Saturdays only)', () => {
    const saturdays = { cron: '0 22 * * 6', durationMs: 6 * 60 * MIN, tz: 'UTC' };
    // 2026-11-26 is a Thursday.
    expect(windowState(saturdays, at('2026-11-26T23:00:00Z'))).toEqual({ open: false, opensAt: at('2026-11-28T22:00:00Z') });
    expect(windowState(saturdays, at('2026-11-29T03:59:00Z'))).toEqual({ open: true, closesAt: at('2026-11-29T04:00:00Z') });
  });

  it('chains overlapping firings into one open stretch', () => {
    const everyHourForNinety = { cron: '0 * * * *', durationMs: 90 * MIN, tz: 'UTC' };
    const state = windowState(everyHourForNinety, at('2026-11-26T12:10:00Z'));
    expect(state.open).toBe(true);
    // Every firing extends the stretch; the bound keeps the computation finite.
    expect(state.open && state.closesAt > at('2026-11-27T12:00:00Z')).toBe(true);
  });
});
