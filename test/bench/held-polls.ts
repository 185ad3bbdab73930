import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Identity } from './load.js';
import { memoryOf } from './proc.js';

/**
 * What a held long poll costs the control plane's memory (issue 17: 100,000 held polls took 5.3 GB
 * over 10 processes in fleet-sim): `count` connections each send one desired-state poll with the
 * current ETag and `wait` (so it waits, as a gateway's does), and the server's RSS (every process)
 * is read before they connect and once its gauge shows every one waiting. The sockets are bare
 * (one request written as bytes each, nothing read): the client's own cost stays out of the way.
 */

export interface Held {
  /** Server RSS (MiB, all processes) before the polls and with all of them waiting. */
  rssBeforeMiB: number;
  rssHeldMiB: number;
  /** KiB of server RSS per held poll. */
  kibPerPoll: number;
  /** Seconds from the first connection until the gauge showed them all. */
  seconds: number;
}

const rssMiB = (pids: number[]): number => pids.reduce((s, p) => s + memoryOf(p).rss, 0) / 2 ** 20;

/** Long polls waiting in the control plane's processes (the berth_cp_desired_long_polls gauge). */
async function waiting(url: string, adminToken: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${adminToken}` } })).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('berth_cp_desired_long_polls'))
    .reduce((s, l) => s + Number(l.split(' ').pop()), 0);
}

export async function holdPolls(o: { url: string; adminToken: string; pids: number[]; identities: Identity[]; count: number; waitSec: number }): Promise<Held> {
  const { hostname, port } = new URL(o.url);
  const rssBeforeMiB = rssMiB(o.pids);
  const sockets: Socket[] = [];
  const t0 = performance.now();
  try {
    for (let i = 0; i < o.count; i++) {
      const id = o.identities[i % o.identities.length];
      const head = [`GET /v1/device/desired?wait=${o.waitSec} HTTP/1.1`, `Host: ${hostname}:${port}`, ...Object.entries(id.headers).map(([k, v]) => `${k}: ${v}`), '', ''].join('\r\n');
      const s = connect({ host: hostname, port: Number(port) }, () => s.write(head));
      s.on('error', () => undefined);
      sockets.push(s);
      // A few hundred connections a turn: the listen backlog is not the thing measured.
      if (i % 200 === 199) await sleep(20);
    }
    // With --workers the gauge is one process's (whichever answers /metrics): wait on it only for one process.
    for (;;) {
      const n = o.pids.length === 1 ? await waiting(o.url, o.adminToken) : o.count;
      if (n >= o.count) break;
      if (performance.now() - t0 > 120_000) throw new Error(`${n} of ${o.count} polls waiting after 120 s`);
      await sleep(250);
    }
    // Let the allocations of the last ones settle (their request objects, the waiter entries).
    await sleep(1000);
    const rssHeldMiB = rssMiB(o.pids);
    return { rssBeforeMiB, rssHeldMiB, kibPerPoll: ((rssHeldMiB - rssBeforeMiB) * 1024) / o.count, seconds: (performance.now() - t0) / 1000 };
  } finally {
    for (const s of sockets) s.destroy();
  }
}
