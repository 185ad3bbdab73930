import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ControlPlaneContext } from '../../control-plane/context.js';
import { applyOutcomes, recordReports } from '../../control-plane/campaigns/membership.js';
import { deviceSlices, dropUnmatchedPending, joinMatchingDevices, loadCampaign, loadCounts } from '../../control-plane/campaigns/store.js';
import { parseSelector } from '../../control-plane/selector.js';
import { sweepPresence } from '../../control-plane/webhooks/presence.js';
import { fileContext } from './file-context.js';

/**
 * The periodic jobs made to scale (issue 17) keep their decisions: presence swept in windows of
 * rowids, campaign reports decided in batches, the counts the planner reads, and the membership
 * sweep done in slices of the fleet. On a real libSQL file, with small windows so every edge of a
 * window is crossed by a handful of devices.
 */

const T = 1_800_000_000_000;
let dir: string;
let ctx: ControlPlaneContext;
let close: () => void;
let now = T;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-fleet-jobs-'));
  now = T;
  ({ ctx, close } = await fileContext(dir, 'berth.db', { now: () => new Date(now) }));
});

afterEach(() => {
  close();
  rmSync(dir, { recursive: true, force: true });
});

async function exec(sql: string, args: (string | number | null)[] = []): Promise<void> {
  await ctx.client.execute({ sql, args });
}

async function rows<T>(sql: string, args: (string | number)[] = []): Promise<T[]> {
  return (await ctx.client.execute({ sql, args })).rows as unknown as T[];
}

/** Devices d0..d(n-1); `seen[i]` their sighting (null: never), `status[i]` default enrolled. */
async function devices(seen: (number | null)[], status: Record<number, string> = {}, labels: (i: number) => string = () => '{"site":"a"}'): Promise<void> {
  for (let i = 0; i < seen.length; i++) {
    await exec("INSERT INTO devices (id, serial, public_key, labels, status, created_at, token_epoch) VALUES (?, ?, 'pk', ?, ?, ?, 0)", [`d${i}`, `S-${i}`, labels(i), status[i] ?? 'enrolled', T]);
    const at = seen[i];
    if (at !== null) await exec('INSERT INTO device_sightings (device_id, last_seen_at) VALUES (?, ?)', [`d${i}`, at]);
  }
}

const presence = async () => Object.fromEntries((await rows<{ device_id: string; online: number }>('SELECT device_id, online FROM device_presence ORDER BY device_id')).map((r) => [r.device_id, Number(r.online)]));
const events = async () => (await rows<{ type: string; subject: string }>('SELECT type, subject FROM webhook_events ORDER BY seq')).map((e) => `${e.type} ${e.subject}`);

describe('presence swept in windows', () => {
  it('announces each change once, across window edges, with one event per device for a webhook that wants it', async () => {
    await exec("INSERT INTO webhooks (id, url, events, secret, created_at, created_by) VALUES ('wh_1', 'https://hooks.example.com/x', '[\"device.*\"]', 'sealed', ?, 'test')", [T]);
    const fresh = T - 1000;
    const stale = T - ctx.config.offlineAfterMs - 1;
    // d0..d6 over windows of 3: seen, stale, never, seen but revoked, seen, seen, stale.
    await devices([fresh, stale, null, fresh, fresh, fresh, stale], { 3: 'revoked' });
    expect(await sweepPresence(ctx, 3)).toEqual({ online: 3, offline: 0 });
    expect(await presence()).toEqual({ d0: 1, d4: 1, d5: 1 });
    expect(await sweepPresence(ctx, 3)).toEqual({ online: 0, offline: 0 });
    // d5 falls silent, d1 is heard from again, d4 is revoked.
    now = fresh + ctx.config.offlineAfterMs + 10;
    await exec('UPDATE device_sightings SET last_seen_at = ? WHERE device_id IN (?, ?, ?)', [now - 5, 'd0', 'd1', 'd4']);
    await exec("UPDATE devices SET status = 'revoked' WHERE id = 'd4'");
    expect(await sweepPresence(ctx, 3)).toEqual({ online: 1, offline: 2 });
    expect(await presence()).toEqual({ d0: 1, d1: 1, d4: 0, d5: 0 });
    expect((await events()).sort()).toEqual(['device.offline devices/S-4', 'device.offline devices/S-5', 'device.online devices/S-0', 'device.online devices/S-1', 'device.online devices/S-4', 'device.online devices/S-5']);
    const deliveries = await rows<{ n: number }>("SELECT count(*) AS n FROM webhook_deliveries WHERE webhook_id = 'wh_1'");
    expect(Number(deliveries[0].n)).toBe(6);
  });

  it('records presence without writing events when no webhook wants them', async () => {
    await devices([T - 10, T - 10, T - 10, T - 10, T - 10]);
    expect(await sweepPresence(ctx, 2)).toEqual({ online: 5, offline: 0 });
    expect(Object.keys(await presence())).toHaveLength(5);
    expect(await events()).toEqual([]);
  });
});

/** A running campaign `c1` (release app@1.0.0, waves 50 %/100 %) over d0..d(n-1), all pending. */
async function campaign(n: number): Promise<void> {
  await devices(Array.from({ length: n }, () => T), {}, (i) => (i % 2 ? '{"site":"b"}' : '{"site":"a"}'));
  await exec("INSERT INTO manifests (id, name, version, digest, spec, source, published_at, published_by) VALUES ('m1', 'app', '1.0.0', 'sha256:1', '{}', '', ?, 't')", [T]);
  const spec = { release: 'app@1.0.0', selector: '', waves: [{ kind: 'percent', percent: 50 }, { kind: 'percent', percent: 100 }], success: 1, maxFailures: 0.5, deviceTimeoutMs: 3_600_000, soakMs: 0, window: null, onFailure: 'pause' };
  await exec("INSERT INTO campaigns (id, name, manifest_id, release, selector, spec, status, current_wave, created_at, created_by, updated_at) VALUES ('c1', 'c1', 'm1', 'app@1.0.0', '', ?, 'running', 0, ?, 't', ?)", [JSON.stringify(spec), T, T]);
  await exec("INSERT INTO campaign_devices (campaign_id, device_id, state, active, late, joined_at) SELECT 'c1', id, 'pending', 1, 0, ? FROM devices", [T]);
}

const state = async (device: string) => (await rows<{ state: string }>("SELECT state FROM campaign_devices WHERE campaign_id = 'c1' AND device_id = ?", [device]))[0].state;
const running = { desiredSequence: 7, running: 'app@1.0.0', phase: 'running' as const, services: { app: { image: 'x', status: 'running' as const, health: 'none' as const, restarts: 0 } } };
const failed = { desiredSequence: 7, running: null, phase: 'failed' as const, services: {}, error: 'boom' };

describe('campaign reports decided in batches', () => {
  it('decides two reports of one device in order, as one after the other would', async () => {
    await campaign(3);
    await exec("UPDATE campaign_devices SET state = 'assigned', wave = 0, assigned_at = ?, desired_sequence = 7 WHERE device_id IN ('d0', 'd1', 'd2')", [T]);
    const changed = await recordReports(ctx, [
      { deviceId: 'd0', report: failed },
      { deviceId: 'd1', report: { ...running, desiredSequence: 6 } },
      { deviceId: 'd0', report: running },
      { deviceId: 'd2', report: running },
      { deviceId: 'd2', report: running },
    ]);
    expect(changed).toEqual(['c1']);
    // d0 failed, then recovered; d1 reported about an older document; d2 twice the same outcome.
    expect([await state('d0'), await state('d1'), await state('d2')]).toEqual(['succeeded', 'assigned', 'succeeded']);
    expect(await recordReports(ctx, [{ deviceId: 'd2', report: running }])).toEqual([]);
  });
});

describe('campaign reports that cannot decide an outcome', () => {
  it('read no member row; the others move members past a read chunk, each only from the state it was decided on', async () => {
    await campaign(1203);
    await exec("UPDATE campaign_devices SET state = 'assigned', wave = 0, assigned_at = ?, desired_sequence = 7", [T]);
    const batch = Array.from({ length: 1203 }, (_, i) => ({ deviceId: `d${i}`, report: i % 100 === 3 ? { ...failed, error: i % 200 === 3 ? 'boom' : 'bust' } : running }));
    expect(await recordReports(ctx, batch)).toEqual(['c1']);
    const byState = async () =>
      (await rows<{ state: string; last_error: string | null; n: number }>("SELECT state, last_error, count(*) AS n FROM campaign_devices WHERE campaign_id = 'c1' GROUP BY state, last_error ORDER BY state, last_error")).map((r) => [
        r.state,
        r.last_error,
        Number(r.n),
      ]);
    expect(await byState()).toEqual([
      ['failed', 'boom', 6],
      ['failed', 'bust', 6],
      ['succeeded', null, 1191],
    ]);
    // Decided on 'assigned' for members that moved since (d3 failed, d4 succeeded): the write leaves them.
    const row = (device: string) => ({ campaign_id: 'c1', device_id: device, state: 'assigned' as const, desired_sequence: 7, release: 'app@1.0.0' });
    const moves = { moves: [{ row: row('d3'), report: running }, { row: row('d4'), report: failed }], now: T + 1 };
    expect(await ctx.write((tx) => applyOutcomes(tx, moves))).toEqual(['c1']);
    expect(await byState()).toEqual([
      ['failed', 'boom', 6],
      ['failed', 'bust', 6],
      ['succeeded', null, 1191],
    ]);
    // A downloading report decides nothing whatever the row says: its device's rows are not read.
    await exec("UPDATE campaign_devices SET state = 'assigned' WHERE device_id = 'd0'");
    let reads = 0;
    const counted = { ...ctx, db: new Proxy(ctx.db, { get: (t, p, r) => (p === 'all' && reads++, Reflect.get(t, p, r)) }) };
    expect(await recordReports(counted, [{ deviceId: 'd0', report: { ...running, phase: 'downloading' as const, running: null } }])).toEqual([]);
    expect(reads).toBe(0);
    expect(await recordReports(counted, [{ deviceId: 'd0', report: running }])).toEqual(['c1']);
    expect([reads, await state('d0')]).toEqual([1, 'succeeded']);
  });
});

describe('the counts the planner reads', () => {
  it('counts states by wave, the oldest assignment in flight and the failures acknowledged', async () => {
    await campaign(8);
    const set = (ids: string[], wave: number, st: string, assignedAt: number, finishedAt: number | null) =>
      exec(`UPDATE campaign_devices SET state = ?, wave = ?, assigned_at = ?, finished_at = ? WHERE device_id IN (${ids.map(() => '?').join(', ')})`, [st, wave, assignedAt, finishedAt, ...ids]);
    await set(['d0', 'd1'], 0, 'succeeded', T + 1, T + 5);
    await set(['d2'], 0, 'failed', T + 1, T + 5);
    await set(['d3'], 0, 'failed', T + 1, T + 20);
    await set(['d4'], 1, 'assigned', T + 30, null);
    await set(['d5'], 1, 'assigned', T + 25, null);
    await exec("UPDATE campaigns SET failures_acknowledged_at = ? WHERE id = 'c1'", [T + 10]);
    const c = await loadCampaign(ctx.db, 'c1');
    expect(await loadCounts(ctx.db, c!)).toEqual({
      pending: 2,
      waves: [
        { assigned: 0, succeeded: 2, failed: 2, acknowledgedFailed: 1, oldestAssignedAt: null },
        { assigned: 2, succeeded: 0, failed: 0, acknowledgedFailed: 0, oldestAssignedAt: T + 25 },
      ],
    });
  });
});

describe('membership swept in slices of the fleet', () => {
  it('covers every device once, whatever the slice size: the same members join and leave as in one statement', async () => {
    await campaign(7);
    const selector = parseSelector('site=a');
    const slices = await deviceSlices(ctx.db, 2);
    expect(slices.map((s) => [s.after, s.upTo])).toEqual([['', 'd1'], ['d1', 'd3'], ['d3', 'd5'], ['d5', null]]);
    // A device added after the slices were read is in the open-ended last one.
    await exec("INSERT INTO devices (id, serial, public_key, labels, status, created_at, token_epoch) VALUES ('d9', 'S-9', 'pk', '{\"site\":\"a\"}', 'enrolled', ?, 0)", [T]);
    let left = 0;
    let joined = 0;
    for (const slice of slices) {
      await ctx.write(async (tx) => {
        left += await dropUnmatchedPending(tx, 'c1', selector, T, slice);
        joined += await joinMatchingDevices(tx, 'c1', selector, T, true, undefined, slice);
      });
    }
    // Odd devices are site=b: they leave; d9 joins late.
    expect([left, joined]).toEqual([3, 1]);
    const members = await rows<{ device_id: string; state: string }>("SELECT device_id, state FROM campaign_devices WHERE campaign_id = 'c1' ORDER BY device_id");
    expect(members.map((m) => `${m.device_id}:${m.state}`)).toEqual(['d0:pending', 'd1:left', 'd2:pending', 'd3:left', 'd4:pending', 'd5:left', 'd6:pending', 'd9:pending']);
  });
});
