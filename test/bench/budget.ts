/**
 * The wall-time budget of `npm run bench` (issues 11 and 17: the full run finishes in under 25
 * minutes on this 2-core machine). The runner times every entry and prints this table in every
 * run, so an entry that grows shows up at once instead of in the next session's full run.
 */

export const BUDGET_SECONDS = 25 * 60;

/** One entry's wall time in a run. */
export interface EntryTime {
  bench: string;
  seconds: number;
  failed: boolean;
}

export function fmtDuration(seconds: number): string {
  const s = Math.round(seconds);
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
}

/**
 * Markdown table of each entry's wall time and the total against the budget. A run of some
 * entries (--only) says so: its total is not the full run's.
 */
export function timingMarkdown(entries: EntryTime[], totalSeconds: number, opts: { partial: boolean; load?: string }): string {
  const lines = ['| bench | wall time | share |', '|---|---|---|'];
  for (const e of entries) {
    const share = totalSeconds > 0 ? `${Math.round((100 * e.seconds) / totalSeconds)} %` : '—';
    lines.push(`| ${e.bench}${e.failed ? ' (FAILED)' : ''} | ${fmtDuration(e.seconds)} | ${share} |`);
  }
  const verdict = totalSeconds <= BUDGET_SECONDS ? 'within' : 'OVER';
  const scope = opts.partial ? ' (these entries only, not the full run)' : '';
  lines.push(`| **total**${scope} | **${fmtDuration(totalSeconds)}** | ${verdict} the ${BUDGET_SECONDS / 60} min budget |`);
  if (opts.load) lines.push('', `Load average at the start and the end: ${opts.load}.`);
  return lines.join('\n') + '\n';
}
