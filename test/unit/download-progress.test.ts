import { describe, expect, it } from 'vitest';
import { ProgressTracker, type DownloadProgress } from '../../edge-daemon/download/progress.js';

function tracker(interval = 500): { t: ProgressTracker; seen: DownloadProgress[]; clock: { now: number } } {
  const seen: DownloadProgress[] = [];
  const clock = { now: 0 };
  const t = new ProgressTracker((p) => seen.push(p), interval, () => clock.now);
  return { t, seen, clock };
}

describe('ProgressTracker', () => {
  it('sums bytes per image and in total, a shared blob counted once', () => {
    const { t } = tracker();
    t.addBlob('img-a', 'b1', 100);
    t.addBlob('img-a', 'b2', 50);
    t.addBlob('img-b', 'b1', 100);
    t.addImage('img-c');
    t.set('b1', 30);
    t.set('b2', 50);
    expect(t.snapshot()).toEqual({
      done: 80,
      total: 150,
      images: { 'img-a': { done: 80, total: 150 }, 'img-b': { done: 0, total: 0 }, 'img-c': { done: 0, total: 0 } },
    });
  });

  it('emits at most once per interval, and flush() emits the final state', () => {
    const { t, seen, clock } = tracker(500);
    t.addBlob('img', 'b', 1000);
    for (let i = 1; i <= 10; i++) {
      clock.now = i * 100;
      t.set('b', i * 10);
    }
    // 100, 600 (≥ 500 after 100): two emissions in one simulated second of ten updates.
    expect(seen.map((p) => p.done)).toEqual([10, 60]);
    t.flush();
    expect(seen.at(-1)?.done).toBe(100);
  });

  it('goes back down when a blob starts over', () => {
    const { t } = tracker(0);
    t.addBlob('img', 'b', 100);
    t.set('b', 90);
    t.set('b', 0);
    expect(t.snapshot().done).toBe(0);
  });
});
