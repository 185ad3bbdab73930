/**
 * What one last-seen flush write costs at fleet scale (issue 17), before and after sightings moved
 * out of the wide `devices` row (0118): `node dist/test/bench/sightings-flush.js [--devices 100000]
 * [--per-write 2000] [--writes 8]`. Builds two real libSQL files with the same N enrolled devices (random
 * ids, as enrollment mints them), one migrated up to 0117 (sightings in `devices.last_seen_at`,
 * written by the UPDATE … FROM (VALUES …) that last-seen.ts ran until then) and one fully migrated
 * (`device_sightings`, written by LastSeen.flush), then times, alternating, writes of `--per-write`
 * sightings of devices picked at random (the polls of a live fleet are), each in its own
 * transaction with its commit. Prints wall and CPU ms per write. Not part of `npm run bench`.
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sql } from 'drizzle-orm';
import { createLogger } from '../../common/log.js';
import { migrate, openDatabase, type Db } from '../../control-plane/db/open.js';
import { migrations } from '../../control-plane/db/migrations/index.js';
import { createWriteQueue } from '../../control-plane/db/write-queue.js';
import { LastSeen } from '../../control-plane/devices/last-seen.js';
import { scratchDir } from './proc.js';

const { values } = parseArgs({ options: { devices: { type: 'string' }, 'per-write': { type: 'string' }, writes: { type: 'string' } } });
const n = Number(values.devices ?? 100_000);
const perWrite = Number(values['per-write'] ?? 2000);
const writes = Number(values.writes ?? 8);
const log = createLogger('sightings-flush', { level: 'warn' });
const dir = scratchDir('sightings-flush');

const ids = Array.from({ length: n }, () => 'dev_' + randomBytes(9).toString('base64url'));
const now = Date.now();

async function seeded(name: string, upTo: number): Promise<Db> {
  const { client, db } = await openDatabase(`file:${join(dir.dir, name)}`);
  await migrate(client, log, migrations.slice(0, upTo));
  for (let i = 0; i < n; i += 500) {
    const rows = ids.slice(i, i + 500).map((id, j) => sql`(${id}, ${`fleet-${i + j}`}, ${randomBytes(32).toString('base64url')}, ${JSON.stringify({ fleet: 'sim', site: `s${(i + j) % 10}` })}, 'enrolled', ${now}, ${now}, 0, ${randomBytes(32).toString('base64url')})`);
    await db.run(sql`INSERT INTO devices (id, serial, public_key, labels, status, created_at, enrolled_at, token_epoch, encryption_key) VALUES ${sql.join(rows, sql`, `)}`);
  }
  return db;
}

const before = await seeded('before.db', migrations.findIndex((m) => m.id === '0118_device_sightings'));
const after = await seeded('after.db', migrations.length);
await before.run(sql`UPDATE devices SET last_seen_at = ${now}`);
await after.run(sql`INSERT INTO device_sightings (device_id, last_seen_at) SELECT id, ${now} FROM devices`);

const pick = (): string[] => {
  const s = new Set<string>();
  while (s.size < perWrite) s.add(ids[Math.floor(Math.random() * n)]);
  return [...s];
};

/** The flush as last-seen.ts wrote it until 0118: 400 rows per statement into the wide row. */
async function flushBefore(db: Db, part: string[], at: number): Promise<void> {
  await db.transaction(async (tx) => {
    for (let j = 0; j < part.length; j += 400) {
      const rows = part.slice(j, j + 400).map((id) => sql`(${id}, ${at})`);
      await tx.run(sql`UPDATE devices SET last_seen_at = max(coalesce(devices.last_seen_at, 0), v.column2) FROM (VALUES ${sql.join(rows, sql`, `)}) AS v WHERE devices.id = v.column1`);
    }
  });
}

const seen = new LastSeen();
const { write } = createWriteQueue(after, log);
async function flushAfter(part: string[], at: number): Promise<void> {
  for (const id of part) seen.touch(id, at);
  await seen.flush(write);
}

const times = { before: [] as number[][], after: [] as number[][] };
for (let w = 0; w < writes; w++) {
  for (const which of w % 2 ? (['after', 'before'] as const) : (['before', 'after'] as const)) {
    const part = pick();
    const at = Date.now() + w + 1;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await (which === 'before' ? flushBefore(before, part, at) : flushAfter(part, at));
    const cpu = process.cpuUsage(cpu0);
    times[which].push([performance.now() - t0, (cpu.user + cpu.system) / 1000]);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const which of ['before', 'after'] as const) {
  const t = times[which];
  console.log(`${which.padEnd(6)} ${perWrite} sightings of ${n} devices per write: median ${median(t.map((x) => x[0])).toFixed(0)} ms wall, ${median(t.map((x) => x[1])).toFixed(0)} ms CPU (walls ${t.map((x) => x[0].toFixed(0)).join(' ')})`);
}
console.log(`load ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
dir.remove();
