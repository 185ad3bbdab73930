import { describe, expect, it } from 'vitest';
import { PRIORITY_STEP, priorityStepOf } from '../../control-plane/cluster-nice.js';

describe('the HTTP workers’ priority step (BERTH_CLUSTER_PRIORITY_STEP)', () => {
  it('is PRIORITY_STEP when unset or empty, and the number given from 0 to 39', () => {
    expect(priorityStepOf({})).toBe(PRIORITY_STEP);
    expect(priorityStepOf({ BERTH_CLUSTER_PRIORITY_STEP: '' })).toBe(PRIORITY_STEP);
    expect(priorityStepOf({ BERTH_CLUSTER_PRIORITY_STEP: '0' })).toBe(0);
    expect(priorityStepOf({ BERTH_CLUSTER_PRIORITY_STEP: '39' })).toBe(39);
  });

  it('refuses anything else, naming the variable and the value', () => {
    for (const bad of ['-1', '40', '2.5', 'five', ' 5']) {
      expect(() => priorityStepOf({ BERTH_CLUSTER_PRIORITY_STEP: bad })).toThrow(`BERTH_CLUSTER_PRIORITY_STEP="${bad}": a whole number from 0 to 39 is expected`);
    }
  });
});
