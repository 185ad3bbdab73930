import { describe, expect, it } from 'vitest';
import { BUDGET_SECONDS, fmtDuration, timingMarkdown } from '../bench/budget.js';

describe('bench wall-time budget table', () => {
  it('lists every entry with its share and says whether the total is within 25 minutes', () => {
    const md = timingMarkdown([{ bench: 'deltas', seconds: 300, failed: false }, { bench: 'resume', seconds: 100, failed: true }], 400, { partial: false, load: '1.0 → 2.0' });
    expect(md).toContain('| deltas | 5 min 00 s | 75 % |');
    expect(md).toContain('| resume (FAILED) | 1 min 40 s | 25 % |');
    expect(md).toContain('| **total** | **6 min 40 s** | within the 25 min budget |');
    expect(md).toContain('1.0 → 2.0');
  });

  it('says OVER past the budget and marks a partial run', () => {
    const md = timingMarkdown([{ bench: 'fleet-sim', seconds: BUDGET_SECONDS + 1, failed: false }], BUDGET_SECONDS + 1, { partial: true });
    expect(md).toContain('OVER the 25 min budget');
    expect(md).toContain('not the full run');
    expect(fmtDuration(59.4)).toBe('59 s');
  });
});
