import { readFileSync } from 'node:fs';

/**
 * Source ports for the fleet simulator's long polls. One long poll per device means 100,000
 * connections from loopback to the control plane, more than the kernel's ephemeral range (about
 * 28,000 ports here) gives to one destination address and port. Ports the simulator binds itself
 * (root may bind any free port) widen that, but only outside the ephemeral range: Linux never hands
 * out for an outgoing connection a port bound explicitly, so binding inside the range would starve
 * every other process's connects. Each worker gets its own share (two processes binding the same
 * port to the same destination would collide), and the rest connect from the ephemeral range as
 * usual. The control plane listens on both loopbacks, so each family has its own ports.
 */

/** The kernel's ephemeral range, [low, high]. */
export function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo > 0 && hi >= lo) return [lo, hi];
  } catch {
    // Not Linux: the IANA range.
  }
  return [49152, 65535];
}

/** The ports worker `w` of `workers` may bind: 1024–65535 outside `ephemeral` and `exclude`, every `workers`-th one. */
export function sourcePortsOf(w: number, workers: number, ephemeral: [number, number], exclude: number[]): number[] {
  const skip = new Set(exclude);
  const out: number[] = [];
  for (let p = 1024 + w; p <= 65535; p += workers) {
    if (p >= ephemeral[0] && p <= ephemeral[1]) continue;
    if (!skip.has(p)) out.push(p);
  }
  return out;
}

/** Hands out one worker's ports of one family; undefined once they are used up (connect from the ephemeral range). */
export class PortPool {
  private next = 0;

  constructor(private readonly ports: number[]) {}

  take(): number | undefined {
    return this.next < this.ports.length ? this.ports[this.next++] : undefined;
  }
}

/** A connect that failed for its source port (bound by someone else, or its last connection still in TIME_WAIT): try another port. */
export function sourcePortRefused(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL';
}
