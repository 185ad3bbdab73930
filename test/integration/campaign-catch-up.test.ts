import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseManifest } from '../../manifests/parse.js';
import { createCampaignBody } from '../../protocol/campaign-spec.js';
import type { DeviceReport } from '../../protocol/device.js';
import type { ControlPlaneContext } from '../../control-plane/context.js';
import type { OperatorActor } from '../../control-plane/http.js';
import { ReportWriter } from '../../control-plane/device-api/report-writer.js';
import { advanceCampaign } from '../../control-plane/campaigns/executor.js';
import { reportReconciler } from '../../control-plane/campaigns/reconcile.js';
import { campaignStatus, createCampaign, operatorAction } from '../../control-plane/campaigns/service.js';
import { specFromBody } from '../../control-plane/campaigns/spec.js';
import { loadCampaign } from '../../control-plane/campaigns/store.js';
import { twoViews } from './file-context.js';

/**
 * What the campaign engine keeps up to date from the reports that changed (issue 17), against a
 * real libSQL file with two processes' views of it: reports go through process B's report writer
 * (so process A hears no event and must catch up), and A's reconcile and status must decide and
 * count as reading everything would.
 */

let a: ControlPlaneContext;
let b: ControlPlaneContext;
let close: () => void;
let writer: ReportWriter;
let reportSeq = 0;
const actor: OperatorActor = { kind: 'operator', id: 'test', role: 'admin' };

beforeEach(async () => {
  ({ a, b, close } = await twoViews('berth-catch-up-'));
  writer = new ReportWriter(b);
});

afterEach(() => close());

async function exec(sql: string, args: (string | number | null)[] = []): Promise<void> {
  await a.client.execute({ sql, args });
}

async function one<T>(sql: string, args: (string | number)[] = []): Promise<T> {
  return (await a.client.execute({ sql, args })).rows[0] as unknown as T;
}

function spec(version: string): string {
  const parsed = parseManifest(`name: app\nversion: ${version}\nservices:\n  web:\n    image: registry.example.com/app@sha256:${'a'.repeat(64)}\n`, 'app.yaml');
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return JSON.stringify(parsed.manifest);
}

/**
 * Devices d0..d2 on app@1.0.0; d3 already runs app@2.0.0 at sequence 5 and said so, so when a
 * campaign of that release assigns it, its sequence stays and its old report already tells its outcome.
 */
async function fleet(): Promise<void> {
  for (let i = 0; i < 4; i++) await exec("INSERT INTO devices (id, serial, public_key, labels, status, created_at, token_epoch) VALUES (?, ?, 'pk', '{}', 'enrolled', 1, 0)", [`d${i}`, `S-${i}`]);
  for (const [id, version] of [['m1', '1.0.0'], ['m2', '2.0.0']]) {
    await exec("INSERT INTO manifests (id, name, version, digest, spec, source, published_at, published_by) VALUES (?, 'app', ?, ?, ?, '', 1, 't')", [id, version, `sha256:${id}`, spec(version)]);
  }
  for (const d of ['d0', 'd1', 'd2']) await exec("INSERT INTO desired (device_id, manifest_id, sequence, issued_at) VALUES (?, 'm1', 1, 1)", [d]);
  await exec("INSERT INTO desired (device_id, manifest_id, sequence, issued_at) VALUES ('d3', 'm2', 5, 1)");
  await report('d3', 'running', { done: 300 });
}

async function start(): Promise<string> {
  const body = createCampaignBody.parse({ manifest: 'app@2.0.0', waves: ['50%', '100%'], success: 0.5, maxFailures: 0.5, start: true });
  const out = await createCampaign(a, actor, { spec: specFromBody(body), supersede: false, start: true });
  if (out.kind !== 'created') throw new Error(out.kind);
  return out.id;
}

const sequenceOf = async (device: string) => Number((await one<{ sequence: number }>('SELECT sequence FROM desired WHERE device_id = ?', [device])).sequence);
const stateOf = async (id: string, device: string) => (await one<{ state: string }>('SELECT state FROM campaign_devices WHERE campaign_id = ? AND device_id = ?', [id, device])).state;

/** A report from the device about its current document, through process B. */
async function report(device: string, phase: 'downloading' | 'running' | 'failed', bytes: { done: number; full?: number; delta?: boolean }): Promise<void> {
  const r: DeviceReport = {
    sequence: ++reportSeq,
    desiredSequence: await sequenceOf(device),
    running: phase === 'running' ? 'app@2.0.0' : null,
    phase,
    bytes: { total: bytes.done, ...bytes },
    services: phase === 'running' ? { web: { image: 'x', status: 'running', health: 'none', restarts: 0 } } : {},
    ...(phase === 'failed' ? { error: 'boom' } : {}),
    at: '2026-01-01T00:00:00Z',
  } as DeviceReport;
  const out = await writer.submit(device, r, Date.now());
  expect(out.accepted).toBe(true);
}

describe('the reconcile reads the reports that changed', () => {
  it('decides reports taken by another process, a report that changes after a pass, and a member assigned with a matching report', async () => {
    await fleet();
    const id = await start();
    const reconcile = reportReconciler(a);
    expect(await reconcile.pass()).toEqual([]);
    await report('d0', 'running', { done: 100 });
    await report('d1', 'downloading', { done: 10 });
    // Reports newer than the last pass are the event path's (none runs here): the next pass leaves them, the one after decides them.
    expect(await reconcile.pass()).toEqual([]);
    expect(await stateOf(id, 'd0')).toBe('assigned');
    expect(await reconcile.pass()).toEqual([id]);
    expect([await stateOf(id, 'd0'), await stateOf(id, 'd1')]).toEqual(['succeeded', 'assigned']);
    // After the pass, d1's report changes: the pass after next sees it.
    await report('d1', 'failed', { done: 20 });
    expect(await reconcile.pass()).toEqual([]);
    expect(await reconcile.pass()).toEqual([id]);
    expect(await stateOf(id, 'd1')).toBe('failed');

    // Only the devices that reported are read: a member set back by hand is left alone until a full pass.
    await exec("UPDATE campaign_devices SET state = 'assigned' WHERE campaign_id = ? AND device_id = 'd0'", [id]);
    expect(await reconcile.pass()).toEqual([]);
    expect(await stateOf(id, 'd0')).toBe('assigned');
    reconcile.reset();
    expect(await reconcile.pass()).toEqual([id]);
    expect(await stateOf(id, 'd0')).toBe('succeeded');

    // Wave 1 gave d0 and d1 a new document: their reports came after it, so it did not make the passes read every member.
    const assignments = async () => Number((await one<{ n: number }>('SELECT assignments AS n FROM campaigns WHERE id = ?', [id])).n);
    expect(await assignments()).toBe(0);
    // Wave 2 assigns d2 and d3; d3's sequence stays (it runs the release), and its report from
    // before the campaign already says running: no new report comes, yet the next pass decides it.
    await a.write((tx) => advanceCampaign(a, tx, id));
    expect(await assignments()).toBe(1);
    expect([await stateOf(id, 'd2'), await stateOf(id, 'd3')]).toEqual(['assigned', 'assigned']);
    expect(await reconcile.pass()).toEqual([id]);
    expect([await stateOf(id, 'd2'), await stateOf(id, 'd3')]).toEqual(['assigned', 'succeeded']);
  });
});

describe('the status byte totals kept per campaign', () => {
  it('equal the sum over every member after reports, a new wave, and an abort, read from either process', async () => {
    await fleet();
    const id = await start();
    const everyMember = async () => {
      const r = await one<{ moved: number | null; full: number | null; devices: number; viaDelta: number | null }>(
        `SELECT sum(r.bytes_done) AS moved, sum(coalesce(r.bytes_full, r.bytes_total)) AS full, count(*) AS devices, sum(r.bytes_delta) AS viaDelta
        FROM campaign_devices cd JOIN reported r ON r.device_id = cd.device_id AND r.desired_sequence = cd.desired_sequence
        WHERE cd.campaign_id = ? AND cd.state IN ('assigned', 'succeeded', 'failed', 'rolled-back', 'left')`,
        [id],
      );
      return { moved: Number(r.moved ?? 0), full: Number(r.full ?? 0), devices: Number(r.devices), viaDelta: Number(r.viaDelta ?? 0) };
    };
    const check = async (expected: { moved: number; devices: number }) => {
      const sum = await everyMember();
      expect(sum).toMatchObject(expected);
      for (const ctx of [a, b, a]) expect((await campaignStatus(ctx, (await loadCampaign(ctx.db, id))!, Date.now())).bytes).toEqual(sum);
    };
    await check({ moved: 0, devices: 0 });
    await report('d0', 'downloading', { done: 40, full: 400, delta: true });
    await report('d1', 'downloading', { done: 7 });
    await check({ moved: 47, devices: 2 });
    await report('d0', 'running', { done: 90, full: 400, delta: true });
    await check({ moved: 97, devices: 2 });
    // Wave 2 (d0's success decided first): d3's report from before counts at once (its sequence stayed); d2 has none yet.
    expect(await reportReconciler(a).pass()).toEqual([id]);
    await a.write((tx) => advanceCampaign(a, tx, id));
    await check({ moved: 397, devices: 3 });
    await report('d2', 'downloading', { done: 3 });
    await check({ moved: 400, devices: 4 });
    // Abort: d0..d2 go back to app@1.0.0 with a new sequence (d3 had no other release and keeps it);
    // their reports about the new sequence no longer count.
    expect((await operatorAction(a, actor, id, 'abort')).kind).toBe('done');
    await check({ moved: 400, devices: 4 });
    await report('d0', 'running', { done: 0 });
    await check({ moved: 310, devices: 3 });
  });

  it('are read after the event loop served what came in during the counts', async () => {
    await fleet();
    const id = await start();
    const campaign = (await loadCampaign(a.db, id))!;
    // The embedded driver answers reads synchronously: without a turn given back between the
    // counts and the byte catch-up, nothing queued meanwhile would run before the status resolves.
    let served = false;
    const status = campaignStatus(a, campaign, Date.now());
    setImmediate(() => (served = true));
    const out = await status;
    expect(served).toBe(true);
    expect(out.devices.assigned + out.devices.pending).toBe(4);
  });

  it('are kept on the context that read them, not shared through the module', async () => {
    await fleet();
    const id = await start();
    await report('d0', 'downloading', { done: 40, full: 400, delta: true });
    expect(a.byteTallies.byCampaign.size).toBe(0);
    expect(b.byteTallies.byCampaign.size).toBe(0);
    const status = await campaignStatus(b, (await loadCampaign(b.db, id))!, Date.now());
    expect(status.bytes).toMatchObject({ moved: 40, devices: 1 });
    // B's read filled B's tallies only; A counts for itself, the same.
    expect([...b.byteTallies.byCampaign.keys()]).toEqual([id]);
    expect(a.byteTallies.byCampaign.size).toBe(0);
    expect((await campaignStatus(a, (await loadCampaign(a.db, id))!, Date.now())).bytes).toEqual(status.bytes);
    expect([...a.byteTallies.byCampaign.keys()]).toEqual([id]);
  });
});
