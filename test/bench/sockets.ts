import { readdirSync, readlinkSync } from 'node:fs';

/**
 * How many sockets each process holds (Linux /proc/<pid>/fd), 0 for a process gone. Taken before
 * a load run and during it, the difference is the connections each `--workers` process accepted:
 * the kernel decides which worker accepts a connection, and the bench shows the spread it got.
 * Only the processes' own fd tables are read: /proc/net/tcp lists every socket of the machine
 * (tens of thousands while fleet-sim runs), too costly to parse while a run is measured.
 */
export function socketCounts(pids: number[]): number[] {
  return pids.map((pid) => {
    let n = 0;
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        try {
          if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:')) n++;
        } catch {
          // closed since the listing
        }
      }
    } catch {
      return 0;
    }
    return n;
  });
}

/** Connections opened during a run: each process's sockets now minus before, the fullest of several samples. */
export class ConnectionSpread {
  private readonly before: number[];
  private best: number[];
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pids: number[],
    everyMs = 500,
  ) {
    this.before = socketCounts(pids);
    this.best = pids.map(() => 0);
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  private sample(): void {
    const now = socketCounts(this.pids).map((n, i) => Math.max(0, n - this.before[i]));
    const sum = (xs: number[]) => xs.reduce((a, x) => a + x, 0);
    if (sum(now) > sum(this.best)) this.best = now;
  }

  stop(): number[] {
    clearInterval(this.timer);
    return this.best;
  }
}
