import { readFileSync } from 'node:fs';

/**
 * The wall-time budget of `npm run bench` (issues 11 and 17: the full run finishes in under 25
 * minutes on this 2-core machine). The runner times every entry and prints this table in every
 * run, so an entry that grows shows up at once instead of in the next session's full run.
 */

export const BUDGET_SECONDS = 25 * 60;

/** One entry's wall time in a run, and the CPU it used (see cpuSecondsSoFar). */
export interface EntryTime {
  bench: string;
  seconds: number;
  cpuSeconds?: number;
  failed: boolean;
}

/** Linux reports utime/stime in clock ticks; 100 on every mainstream kernel config. */
const CLK_TCK = 100;

/**
 * CPU seconds of this process and of its children that have ended (utime, stime, cutime, cstime
 * of /proc/self/stat): the services, workers and zstd a bench starts, once stopped. The rig's
 * dockerd is not counted. On a loaded machine wall time stretches with the load; this does not,
 * so it tells whether an entry grew or the machine was busy.
 */
export function cpuSecondsSoFar(stat = readFileSync('/proc/self/stat', 'utf8')): number {
  // The command name is in parentheses and may contain spaces: count fields after the last ')'.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state); utime, stime, cutime, cstime are fields 14 to 17.
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
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
  const lines = ['| bench | wall time | share | CPU (runner and its ended children) |', '|---|---|---|---|'];
  for (const e of entries) {
    const share = totalSeconds > 0 ? `${Math.round((100 * e.seconds) / totalSeconds)} %` : '—';
    lines.push(`| ${e.bench}${e.failed ? ' (FAILED)' : ''} | ${fmtDuration(e.seconds)} | ${share} | ${e.cpuSeconds === undefined ? '—' : fmtDuration(e.cpuSeconds)} |`);
  }
  const verdict = totalSeconds <= BUDGET_SECONDS ? 'within' : 'OVER';
  const scope = opts.partial ? ' (these entries only, not the full run)' : '';
  const cpu = entries.every((e) => e.cpuSeconds !== undefined) ? fmtDuration(entries.reduce((n, e) => n + (e.cpuSeconds ?? 0), 0)) : '—';
  lines.push(`| **total**${scope} | **${fmtDuration(totalSeconds)}** | ${verdict} the ${BUDGET_SECONDS / 60} min budget | ${cpu} |`);
  if (opts.load) lines.push('', `Load average at the start and the end: ${opts.load}.`);
  return lines.join('\n') + '\n';
}
