/**
 * The control plane's periodic jobs at fleet scale (issue 17), timed one by one in this process on
 * a real libSQL file: `node dist/test/bench/periodic-jobs.js [--devices 100000] [--runs 3]`.
 * Seeds N enrolled devices (every one seen recently, as a fleet that polls), a release, a running
 * campaign over all of them with its first wave (1 %, or `--assigned` share) assigned and a quarter of that wave reported
 * running, and the twin and history rows those reports leave. Then times each job the lease holder
 * or every process runs on a timer, and the reads a campaign's progress takes, and prints the
 * query plan of each job's statements. The embedded driver runs statements synchronously, so a
 * job's wall time here is the event-loop time it takes from a serving control plane.
 * Not part of `npm run bench`: a tool to find what grows with the fleet (about a minute).
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sql, type SQL } from 'drizzle-orm';
import { createLogger } from '../../common/log.js';
import { createContext, type ControlPlaneContext } from '../../control-plane/context.js';
import { migrate, openDatabase } from '../../control-plane/db/open.js';
import { TypedEmitter } from '../../control-plane/events.js';
import { DesiredWaiters } from '../../control-plane/devices/desired-waiters.js';
import { LastSeen } from '../../control-plane/devices/last-seen.js';
import { pruneDesiredChanges } from '../../control-plane/devices/change-feed.js';
import { DeviceTokenCache } from '../../control-plane/device-api/token-cache.js';
import { notEnrolledStillOnline, seenChangesIn, sweepPresence } from '../../control-plane/webhooks/presence.js';
import { reconcileReports } from '../../control-plane/campaigns/membership.js';
import { reportReconciler } from '../../control-plane/campaigns/reconcile.js';
import { campaignNeedsAdvance } from '../../control-plane/campaigns/executor.js';
import { campaignStatus } from '../../control-plane/campaigns/service.js';
import { deviceSlices, dropUnmatchedPending, joinMatchingDevices, loadCampaign } from '../../control-plane/campaigns/store.js';
import { parseSelector } from '../../control-plane/selector.js';
import { scratchDir } from './proc.js';

const { values } = parseArgs({ options: { devices: { type: 'string' }, runs: { type: 'string' }, assigned: { type: 'string' } } });
const n = Number(values.devices ?? 100_000);
const runs = Number(values.runs ?? 3);
/** --assigned 1: every device assigned (the campaign's last wave), a quarter of them succeeded; default 0.01 (its first). */
const wave = Math.ceil(n * Number(values.assigned ?? 0.01));
const CAMPAIGN = 'cmp_bench';
const FLEET = 'fleet=jobs';

/** The rows a fleet of `n` in the middle of its campaign's first wave leaves, in a few set-based statements. */
async function seed(ctx: ControlPlaneContext, now: number): Promise<void> {
  const nums = `WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ${n})`;
  const id = (col: string) => `'dev_' || printf('%08d', ${col})`;
  const stmts = [
    `${nums} INSERT INTO devices (id, serial, public_key, labels, status, created_at, enrolled_at, token_epoch)
      SELECT ${id('i')}, 'jobs-' || i, 'key' || i, json_object('fleet', 'jobs', 'site', 's' || (i % 10), 'ring', 'r' || (i % 4)), 'enrolled', ${now}, ${now}, 0 FROM k`,
    `${nums} INSERT INTO device_sightings (device_id, last_seen_at) SELECT ${id('i')}, ${now} - (i % 60000) FROM k`,
    `INSERT INTO manifests (id, name, version, digest, spec, source, published_at, published_by) VALUES ('man_1', 'app', '1.0.0', 'sha256:1', '{}', '', ${now}, 'bench')`,
    `INSERT INTO campaigns (id, name, manifest_id, release, selector, spec, status, current_wave, created_at, created_by, updated_at, started_at)
      VALUES ('${CAMPAIGN}', 'bench', 'man_1', 'app@1.0.0', '${FLEET}', json_object('release', 'app@1.0.0', 'selector', '${FLEET}', 'waves', json_array(json_object('kind', 'percent', 'percent', 1), json_object('kind', 'percent', 'percent', 10), json_object('kind', 'percent', 'percent', 100)),
        'success', 1, 'maxFailures', 0.5, 'deviceTimeoutMs', 3600000, 'soakMs', 0, 'window', NULL, 'onFailure', 'pause'), 'running', 0, ${now}, 'bench', ${now}, ${now})`,
    `INSERT INTO campaign_devices (campaign_id, device_id, state, active, late, joined_at) SELECT '${CAMPAIGN}', id, 'pending', 1, 0, ${now} FROM devices`,
    `${nums} INSERT INTO desired (device_id, manifest_id, sequence, campaign_id, issued_at) SELECT ${id('i')}, 'man_1', 1, '${CAMPAIGN}', ${now} FROM k WHERE i < ${wave}`,
    `UPDATE campaign_devices SET state = 'assigned', wave = 0, assigned_at = ${now}, desired_sequence = 1 WHERE device_id IN (SELECT device_id FROM desired)`,
    `${nums} INSERT INTO reported (device_id, sequence, desired_sequence, running, phase, bytes_done, bytes_total, services, at, received_at)
      SELECT ${id('i')}, 2, 1, CASE WHEN i < ${wave / 4} THEN 'app@1.0.0' END, CASE WHEN i < ${wave / 4} THEN 'running' ELSE 'downloading' END, 0, 0, '{}', '2026-01-01T00:00:00Z', ${now} FROM k WHERE i < ${wave}`,
    `UPDATE campaign_devices SET state = 'succeeded', finished_at = ${now} WHERE device_id IN (SELECT device_id FROM reported WHERE phase = 'running')`,
    `${nums} INSERT INTO report_history (device_id, sequence, desired_sequence, running, phase, report, received_at) SELECT ${id('i % ' + wave)}, 1, 1, NULL, 'downloading', '{}', ${now} FROM k WHERE i < ${wave * 2}`,
    `${nums} INSERT INTO desired_changes (device_id, at) SELECT ${id('i')}, ${now} - 700000 FROM k WHERE i < ${wave}`,
  ];
  for (const s of stmts) await ctx.client.execute(s);
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; out: T }> {
  const t0 = performance.now();
  const out = await fn();
  return { ms: performance.now() - t0, out };
}

async function plan(ctx: ControlPlaneContext, what: string, query: string | SQL): Promise<void> {
  const rows = typeof query === 'string' ? (await ctx.client.execute(`EXPLAIN QUERY PLAN ${query}`)).rows : await ctx.db.all<{ detail: unknown }>(sql`EXPLAIN QUERY PLAN ${query}`);
  console.log(`  plan of ${what}:`);
  for (const r of rows) console.log(`    ${String(r.detail)}`);
}

const dir = scratchDir('periodic-jobs');
const log = createLogger('periodic-jobs', { level: 'warn' });
const { client, db } = await openDatabase(`file:${join(dir.dir, 'berth.db')}`);
try {
  await migrate(client, log);
  const config = { offlineAfterMs: 120_000, reportHistoryLimit: 50 } as ControlPlaneContext['config'];
  const ctx = createContext({ db, client, log, events: new TypedEmitter(), config, keys: undefined as never, waiters: new DesiredWaiters(), registry: undefined as never, seen: new LastSeen(), deviceTokens: new DeviceTokenCache(0), vault: undefined as never });
  const now = Date.now();
  const s = await timed(() => seed(ctx, now));
  console.log(`seeded ${n} devices, a campaign over all of them, wave 1 (${wave}) assigned, a quarter of it succeeded, in ${(s.ms / 1000).toFixed(1)} s; load ${loadavg()[0].toFixed(1)}`);

  const campaign = await loadCampaign(ctx.db, CAMPAIGN);
  if (!campaign) throw new Error('seed: no campaign');
  const selector = parseSelector(campaign.spec.selector);
  const reconciler = reportReconciler(ctx);
  await reconciler.pass();
  let reportSeq = 10;
  /** `k` reports of wave devices (history rows, twin rows), as the report writer leaves them: what the catch-ups read. */
  const reportsArrive = async (k: number) => {
    reportSeq++;
    await ctx.client.execute(`WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < ${k})
      INSERT INTO report_history (device_id, sequence, desired_sequence, running, phase, report, received_at) SELECT 'dev_' || printf('%08d', i % ${wave}), ${reportSeq}, 1, NULL, 'downloading', '{}', ${now} FROM k`);
    await ctx.client.execute(`UPDATE reported SET sequence = ${reportSeq}, bytes_done = bytes_done + 1 WHERE device_id IN (SELECT device_id FROM report_history WHERE sequence = ${reportSeq})`);
  };
  let generation = 0;
  const jobs: [string, () => Promise<unknown>, (() => Promise<void>)?][] = [
    ['presence sweep (announces changes)', () => sweepPresence(ctx)],
    ['campaign tick: reconcile, full pass (a takeover)', () => reconcileReports(ctx)],
    ['campaign tick: reconcile, nothing reported since', () => reconciler.pass()],
    ['campaign tick: reconcile after 2,000 reports', () => reconciler.pass(), () => reportsArrive(2000)],
    ['campaign tick: campaignNeedsAdvance (loadCounts)', () => campaignNeedsAdvance(ctx, CAMPAIGN)],
    // A new generation (as after a wave's assignment) makes the status count every member's bytes again.
    ['campaign status (GET /v1/campaigns/:id), bytes in full', () => campaignStatus(ctx, { ...campaign, assignments: ++generation }, Date.now())],
    ['status bytes as summed before (every member, each read)', () => ctx.db.all(sql`SELECT sum(r.bytes_done), sum(coalesce(r.bytes_full, r.bytes_total)), count(*), sum(r.bytes_delta)
      FROM campaign_devices cd INDEXED BY campaign_devices_progress JOIN reported r ON r.device_id = cd.device_id AND r.desired_sequence = cd.desired_sequence
      WHERE cd.campaign_id = ${CAMPAIGN} AND cd.state IN ('assigned', 'succeeded', 'failed', 'rolled-back', 'left')`)],
    ['campaign status, 2,000 reports since the last read', () => campaignStatus(ctx, { ...campaign, assignments: generation }, Date.now()), () => reportsArrive(2000)],
    ['membership sweep (every 60 ticks): longest write', async () => {
      // As the scheduler runs it: a write per slice of the fleet; the longest write is what holds the loop.
      let longest = 0;
      for (const slice of await deviceSlices(ctx.db, 2000)) {
        const t = await timed(() => ctx.write(async (tx) => (await dropUnmatchedPending(tx, CAMPAIGN, selector, Date.now(), slice)) + (await joinMatchingDevices(tx, CAMPAIGN, selector, Date.now(), true, undefined, slice))));
        longest = Math.max(longest, t.ms);
      }
      return `longest write ${longest.toFixed(1)} ms`;
    }],
    // Scattered over the fleet, as the polls of a live fleet are (the first ids in a row would share pages).
    [`last-seen flush of ${wave * 6} sightings`, () => { for (let i = 0; i < wave * 6; i++) ctx.seen.touch(`dev_${String((i * 7919) % n).padStart(8, '0')}`, Date.now()); return ctx.seen.flush(ctx.write); }],
    ['feed pruner', () => pruneDesiredChanges(ctx, Date.now())],
  ];
  for (const [what, job, before] of jobs) {
    const ms: number[] = [];
    let out: unknown;
    for (let r = 0; r < runs; r++) {
      if (before) await before();
      const t = await timed(job);
      ms.push(t.ms);
      out = t.out;
    }
    const shown = typeof out === 'object' && out !== null && !Array.isArray(out) ? JSON.stringify(out).slice(0, 80) : Array.isArray(out) ? `${out.length} rows` : String(out);
    console.log(`${what.padEnd(52)} ${ms.map((x) => x.toFixed(1).padStart(8)).join(' ')} ms   (${shown})`);
  }
  console.log(`\nquery plans (${n} devices):`);
  const cutoff = now - 120_000;
  await plan(ctx, 'loadCounts: by state', `SELECT wave, state, count(*) AS n FROM campaign_devices WHERE campaign_id = '${CAMPAIGN}' AND state IN ('assigned', 'succeeded', 'failed') GROUP BY wave, state`);
  await plan(ctx, 'loadCounts: oldest', `SELECT wave, min(assigned_at) FROM campaign_devices WHERE campaign_id = '${CAMPAIGN}' AND state = 'assigned' GROUP BY wave`);
  await plan(ctx, 'presence: a window', seenChangesIn('', 'dev_5000', cutoff));
  await plan(ctx, 'presence: not enrolled, announced online', notEnrolledStillOnline());
  await plan(ctx, 'reconcileReports', `SELECT cd.device_id FROM campaigns c JOIN campaign_devices cd INDEXED BY campaign_devices_progress ON cd.campaign_id = c.id AND cd.state = 'assigned'
    JOIN reported r ON r.device_id = cd.device_id AND r.desired_sequence = cd.desired_sequence WHERE cd.active = 1 AND c.status IN ('running', 'paused') AND r.phase IN ('running', 'failed', 'rolled-back')`);
  await plan(ctx, 'reconcile: the devices reported since', `SELECT cd.device_id FROM (SELECT DISTINCT device_id FROM report_history WHERE id > 5 AND id <= 10) h
    JOIN campaign_devices cd ON cd.device_id = h.device_id AND cd.active = 1 AND cd.state = 'assigned' JOIN campaigns c ON c.id = cd.campaign_id
    JOIN reported r ON r.device_id = cd.device_id AND r.desired_sequence = cd.desired_sequence WHERE c.status IN ('running', 'paused') AND r.phase IN ('running', 'failed', 'rolled-back')`);
  await plan(ctx, 'status bytes: the devices reported since', `SELECT h.device_id, r.bytes_done FROM (SELECT DISTINCT device_id FROM report_history WHERE id > 5 AND id <= 10) h
    LEFT JOIN campaign_devices cd ON cd.campaign_id = '${CAMPAIGN}' AND cd.device_id = h.device_id AND cd.state IN ('assigned', 'succeeded', 'failed', 'rolled-back', 'left')
    LEFT JOIN reported r ON r.device_id = cd.device_id AND r.desired_sequence = cd.desired_sequence`);
  await plan(ctx, 'status: failing', `SELECT cd.device_id, d.serial FROM campaign_devices cd INDEXED BY campaign_devices_progress JOIN devices d ON d.id = cd.device_id
    WHERE cd.campaign_id = '${CAMPAIGN}' AND cd.state IN ('failed', 'rolled-back') AND (cd.state = 'failed' OR cd.last_error IS NOT NULL) ORDER BY cd.finished_at DESC LIMIT 100`);
  await plan(ctx, 'status: counts', `SELECT wave, state, count(*) FROM campaign_devices WHERE campaign_id = '${CAMPAIGN}' GROUP BY wave, state`);
  await plan(ctx, 'status: bytes', `SELECT sum(r.bytes_done) FROM campaign_devices cd INDEXED BY campaign_devices_progress JOIN reported r ON r.device_id = cd.device_id AND r.desired_sequence = cd.desired_sequence
    WHERE cd.campaign_id = '${CAMPAIGN}' AND cd.state IN ('assigned', 'succeeded', 'failed', 'rolled-back', 'left')`);
} finally {
  client.close();
  dir.remove();
}
