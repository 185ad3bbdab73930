/**
 * One load process of the enrollment bench (enrollment.ts): devices [from, to) of `fleet` enroll
 * through the real routes (challenge, Ed25519 signature over the proof, enroll), `connections`
 * keep-alive connections at once. Reads its job as the first line of stdin, derives every key,
 * enrolls the first `warm` devices (the server's warm-up, not counted), prints `{"event":"ready"}`,
 * waits for a `go` line, enrolls the rest, then prints one result line and exits.
 *
 * The client is raw-http.ts's HTTP/1.1 over net.Socket (one request at a time per connection): the
 * load generator shares the machine's two cores with the server, and node:http's client costs
 * several times more CPU per request than the server's answer here.
 */
import { createInterface } from 'node:readline';
import { signBytes } from '../../protocol/keys.js';
import { enrollProofBytes } from '../../protocol/device.js';
import { simDevice, type SimDevice } from './devices.js';
import { RawConnection, requestText } from './raw-http.js';

export interface EnrollJob {
  url: string;
  fleet: string;
  from: number;
  to: number;
  connections: number;
  /** Devices enrolled before `ready`, outside the measured window (every one the same protocol work). */
  warm: number;
}

export interface EnrollResult {
  event: 'done';
  /** Enrolled in the measured window (the warm-up's not included). */
  enrolled: number;
  seconds: number;
  /** CPU seconds this load process spent in the measured window (user + system). */
  cpuSeconds: number;
  /** Answers other than 200, by "route status", the warm-up's included (the run fails on any). */
  failures: Record<string, number>;
}

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const first = await lines.next();
const job = JSON.parse(String(first.value)) as EnrollJob;
const url = new URL(job.url);
const devices: SimDevice[] = [];
for (let i = job.from; i < job.to; i++) devices.push(simDevice(job.fleet, i));
const conns = Array.from({ length: Math.min(job.connections, devices.length) }, () => new RawConnection(url, {}, true));
/**
 * Connection c opens at c × STAGGER_MS, during the warm-up, not all in one instant: 16 connects at
 * once were all accepted by whichever `--workers` process woke first (each accepts until the queue
 * is empty), and one run of `--workers 2` had one worker serve every connection (2 and 433 CPU ticks
 * in 4 s, 2026-11-30 03:26): an artifact of the burst, not of devices that connect over time. As
 * load.ts does for the control-plane entry; the measured window starts after the last has opened.
 */
const STAGGER_MS = 20;
const opened = conns.map((c, i) => new Promise<void>((resolve) => setTimeout(() => resolve(c.connect()), i * STAGGER_MS)));
const post = (conn: RawConnection, path: string, json: unknown) => conn.send(requestText('POST', new URL(path, url), {}, JSON.stringify(json)));

const failures: Record<string, number> = {};
const failed = (what: string) => (failures[what] = (failures[what] ?? 0) + 1);
let next = 0;
let enrolled = 0;

/** Devices [next, until) enrolled over every connection at once. */
function enrollUntil(until: number): Promise<unknown> {
  return Promise.all(
    conns.map(async (conn, i) => {
      await opened[i];
      while (next < until) {
        const d = devices[next++];
        const ch = await post(conn, '/v1/enroll/challenge', { serial: d.serial });
        if (ch.status !== 200) {
          failed(`challenge ${ch.status}`);
          continue;
        }
        const challenge = (JSON.parse(ch.text) as { challenge: string }).challenge;
        const r = await post(conn, '/v1/enroll', { serial: d.serial, challenge, signature: signBytes(d.privateKey, enrollProofBytes(d.serial, challenge)) });
        if (r.status === 200) enrolled++;
        else failed(`enroll ${r.status}`);
      }
    }),
  );
}

await enrollUntil(Math.min(job.warm, devices.length));
const warmed = enrolled;
process.stdout.write(JSON.stringify({ event: 'ready' }) + '\n');
await lines.next();

const cpu0 = process.cpuUsage();
const t0 = performance.now();
await enrollUntil(devices.length);
enrolled -= warmed;
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
for (const c of conns) c.close();
const result: EnrollResult = { event: 'done', enrolled, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, failures };
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(0);
