import { describe, expect, it } from 'vitest';
import { colorEnabled, formatAgo, formatBytes, formatUpdateBytes, palette, renderFields, renderTable, visibleWidth } from '../../cli/format.js';
import { bucketCounts, outcomeOf, renderBar, renderProgress, renderProgressLine, type CampaignProgress } from '../../cli/progress.js';
import { terminalSafe } from '../../cli/terminal-safe.js';

describe('table', () => {
  it('aligns columns, capitalizes headers, right-aligns numbers, trims trailing blanks', () => {
    const text = renderTable(
      [
        { header: 'serial', get: (r: { s: string; n: number; l: string }) => r.s },
        { header: 'restarts', get: (r) => String(r.n), align: 'right' },
        { header: 'labels', get: (r) => r.l },
      ],
      [
        { s: 'gw-1', n: 3, l: 'site=berlin' },
        { s: 'gateway-22', n: 12, l: '' },
      ],
    );
    expect(text.split('\n')).toEqual(['SERIAL      RESTARTS  LABELS', 'gw-1               3  site=berlin', 'gateway-22        12']);
  });
  it('measures width without ANSI escapes and keeps cells on one line', () => {
    const p = palette(true);
    expect(visibleWidth(p.red('abc'))).toBe(3);
    const text = renderTable([{ header: 'a', get: (r: string) => r }, { header: 'b', get: () => 'x' }], [p.green('ok'), 'two\nlines']);
    expect(text.split('\n')).toHaveLength(3);
    expect(text.split('\n')[1]).toBe(`${p.green('ok')}${' '.repeat(9 + 2)}x`); // padded to 'two ⏎ lines' (11)
    expect(text).toContain('two ⏎ lines');
  });
  it('renders aligned fields', () => {
    expect(renderFields([['serial', 'gw-1'], ['last seen', '3s ago']])).toBe('serial:    gw-1\nlast seen: 3s ago');
  });
});

describe('small formats', () => {
  const now = new Date('2026-01-31T12:00:00Z');
  it('relative times', () => {
    expect(formatAgo('2026-01-31T11:57:00Z', now)).toBe('3m ago');
    expect(formatAgo('2026-01-31T14:00:00Z', now)).toBe('in 2h');
    expect(formatAgo(null, now)).toBe('-');
  });
  it('bytes', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(5 * 1024 * 1024)).toBe('5.0 MiB');
  });
  it('an update\'s bytes: progress, and against the full layers once deltas carried it', () => {
    const MiB = 1024 * 1024;
    expect(formatUpdateBytes({ done: 2 * MiB, total: 4 * MiB })).toBe('2.0 MiB/4.0 MiB');
    expect(formatUpdateBytes({ done: 4 * MiB, total: 4 * MiB, full: 4 * MiB, delta: false })).toBe('4.0 MiB/4.0 MiB');
    expect(formatUpdateBytes({ done: 1.6 * MiB, total: 1.6 * MiB, full: 47 * MiB, delta: true })).toBe('1.6 MiB of 47 MiB (delta)');
    expect(formatUpdateBytes({ done: 0.5 * MiB, total: 1.6 * MiB, full: 47 * MiB, delta: true })).toBe('512 KiB/1.6 MiB of 47 MiB (delta)');
  });
  it('colours only on a TTY without NO_COLOR', () => {
    expect(colorEnabled(true, {})).toBe(true);
    expect(colorEnabled(false, {})).toBe(false);
    expect(colorEnabled(true, { NO_COLOR: '1' })).toBe(false);
    expect(colorEnabled(true, { TERM: 'dumb' })).toBe(false);
  });
});

describe('campaign progress', () => {
  const plain = palette(false);
  const campaign: CampaignProgress = {
    id: 'c1',
    manifest: 'demo@2.0.0',
    status: 'running',
    statusReason: null,
    waves: [
      { index: 1, size: 1, state: 'done', counts: { succeeded: 1 } },
      { index: 2, size: 10, state: 'active', counts: { succeeded: 3, failed: 1, updating: 4, pending: 2 } },
      { index: 3, size: 20, state: 'pending', counts: { pending: 20 } },
    ],
    failing: [{ serial: 'gw-7', wave: 2, error: 'service web unhealthy\nlast log lines:\nboom' }],
  };
  it('buckets device states and campaign outcomes', () => {
    expect(bucketCounts({ succeeded: 3, failed: 1, 'rolled-back': 2, assigned: 4, downloading: 1, pending: 2, left: 7 })).toEqual({ succeeded: 3, failed: 3, active: 5, pending: 2 });
    expect(outcomeOf('completed')).toBe('succeeded');
    expect(outcomeOf('aborted')).toBe('failed');
    expect(outcomeOf('failed')).toBe('failed');
    expect(outcomeOf('paused')).toBe('paused');
    expect(outcomeOf('draft')).toBe('running');
    expect(outcomeOf('running')).toBe('running');
  });
  it('draws bars of exact width in order succeeded, failed, in progress, pending', () => {
    expect(renderBar({ succeeded: 3, failed: 1, active: 4, pending: 2 }, 10, 10, false, plain)).toBe('[###x~~~~..]');
    expect(renderBar({ succeeded: 0, failed: 0, active: 0, pending: 0 }, 0, 8, false, plain)).toBe('[........]');
    // One failure among many still shows.
    const bar = renderBar({ succeeded: 999, failed: 1, active: 0, pending: 0 }, 1000, 20, false, plain);
    expect(bar).toHaveLength(22);
    expect(bar).toContain('x');
  });
  it('renders a plain block with one line per wave and the failing devices', () => {
    const lines = renderProgress(campaign, { fancy: false, width: 10 }).split('\n');
    expect(lines[0]).toBe('campaign c1  demo@2.0.0  running');
    expect(lines[1]).toBe('  wave 1  [##########]   1/1   done      succeeded 1');
    expect(lines[2]).toBe('  wave 2  [###x~~~~..]   3/10  active    succeeded 3 · failed 1 · updating 4 · pending 2');
    expect(lines[3]).toBe('  wave 3  [..........]   0/20  pending   pending 20');
    expect(lines[4]).toBe('  failing (1):');
    expect(lines[5]).toBe('    gw-7  wave 2  service web unhealthy');
  });
  it('uses ANSI only when fancy', () => {
    expect(renderProgress(campaign, { fancy: false })).not.toContain('\x1b[');
    expect(terminalSafe(renderProgress(campaign, { fancy: true }))).toContain('\x1b[32m');
  });
  it('summarizes in one line for pipes', () => {
    expect(renderProgressLine(campaign)).toBe('campaign c1 running: w1 1/1, w2 3/10 (1 failed), w3 0/20');
  });
});
