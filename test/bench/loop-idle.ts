/**
 * The event loop of an idle control plane with a large fleet in its database (issue 17): what the
 * periodic jobs alone cost it. `node dist/test/bench/loop-idle.js [--devices 100000] [--seconds 60]`
 * starts `berth control-plane` (own process, loop-probe.ts loaded) on a fresh embedded database,
 * stops it, inserts N enrolled devices straight into the file (seedEnrolledDevices; `--seen` of
 * them, default all, seen just now, so the presence sweep has a fleet online to check), starts it
 * again, and reads its event-loop delay every 15 s with no request made: any stall is a job on a
 * timer (presence sweep every 15 s, campaign tick every 1 s, last-seen flush, feed tail and prune).
 * Prints each window's p50/p99/max and the server's CPU. No Docker or registry needed.
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '@libsql/client';
import { seedEnrolledDevices } from './fleet.js';
import { loopDelayOf, loopProbeEnv } from './loop-delay.js';
import { cpuSecondsOf, scratchDir } from './proc.js';
import { startControlPlaneProcess } from './services.js';

const { values } = parseArgs({ options: { devices: { type: 'string' }, seconds: { type: 'string' }, seen: { type: 'string' } } });
const n = Number(values.devices ?? 100_000);
const seconds = Number(values.seconds ?? 60);
const seen = Number(values.seen ?? n);

const dir = scratchDir('loop-idle');
const loopDir = join(dir.dir, 'loop');
const cp = await startControlPlaneProcess(dir.dir, { env: loopProbeEnv(loopDir) });
try {
  await cp.child.stop(10_000);
  const t = await seedEnrolledDevices(cp.dbFile, `idle${process.pid}`, 0, n);
  const db = createClient({ url: `file:${cp.dbFile}` });
  await db.execute({ sql: 'INSERT INTO device_sightings (device_id, last_seen_at) SELECT id, ? FROM devices WHERE rowid <= ?', args: [Date.now(), seen] });
  db.close();
  console.log(`${n} enrolled devices inserted in ${t.toFixed(1)} s (${seen} seen just now); control plane restarting; load ${loadavg()[0].toFixed(1)}`);
  await cp.restart();
  const pid = cp.child.pid;
  await loopDelayOf([pid], loopDir);
  for (let at = 15; at <= seconds; at += 15) {
    const cpu0 = cpuSecondsOf(pid);
    await sleep(15_000);
    const cpu = cpuSecondsOf(pid) - cpu0;
    const [l] = await loopDelayOf([pid], loopDir);
    // The probe answers from the event loop: no answer in 2 s is a loop held for longer than that.
    if (!l) {
      console.log(`${String(at).padStart(4)} s: no answer from the event loop within 2 s (held by a job); server CPU ${((cpu / 15) * 100).toFixed(1)}% of one core; load ${loadavg()[0].toFixed(1)}`);
      continue;
    }
    console.log(`${String(at).padStart(4)} s: event-loop delay p50 ${l.p50.toFixed(1)} ms, p99 ${l.p99.toFixed(1)} ms, max ${l.max.toFixed(1)} ms (${l.count} samples); server CPU ${((cpu / 15) * 100).toFixed(1)}% of one core; load ${loadavg()[0].toFixed(1)}`);
  }
} finally {
  await cp.stop();
  dir.remove();
}
