import { describe, expect, it } from 'vitest';
import { BUDGET_SECONDS, cpuSecondsSoFar, fmtDuration, timingMarkdown } from '../bench/budget.js';

describe('bench wall-time budget table', () => {
  it('lists every entry with its share and says whether the total is within 25 minutes', () => {
    const md = timingMarkdown([{ bench: 'deltas', seconds: 300, cpuSeconds: 200, failed: false }, { bench: 'resume', seconds: 100, cpuSeconds: 30, failed: true }], 400, { partial: false, load: '1.0 → 2.0' });
    expect(md).toContain('| deltas | 5 min 00 s | 75 % | 3 min 20 s |');
    expect(md).toContain('| resume (FAILED) | 1 min 40 s | 25 % | 30 s |');
    expect(md).toContain('| **total** | **6 min 40 s** | within the 25 min budget | 3 min 50 s |');
    expect(md).toContain('1.0 → 2.0');
  });

  it('says OVER past the budget and marks a partial run', () => {
    const md = timingMarkdown([{ bench: 'fleet-sim', seconds: BUDGET_SECONDS + 1, failed: false }], BUDGET_SECONDS + 1, { partial: true });
    expect(md).toContain('OVER the 25 min budget');
    expect(md).toContain('not the full run');
    expect(fmtDuration(59.4)).toBe('59 s');
  });
});

describe('bench CPU seconds', () => {
  it('adds the process\'s and its ended children\'s user and system ticks, whatever the command name holds', () => {
    // Fields after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime …
    const stat = '4242 (node (x) y) S 1 2 3 4 5 6 7 8 9 10 150 50 1000 300 20 0';
    expect(cpuSecondsSoFar(stat)).toBe(15);
    expect(cpuSecondsSoFar()).toBeGreaterThan(0);
  });
});
