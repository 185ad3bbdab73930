import { sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseManifest } from '../../manifests/parse.js';
import { createCampaignBody } from '../../protocol/campaign-spec.js';
import type { DeviceReport } from '../../protocol/device.js';
import type { ControlPlaneContext } from '../../control-plane/context.js';
import type { OperatorActor } from '../../control-plane/http.js';
import { ReportWriter } from '../../control-plane/device-api/report-writer.js';
import { advanceCampaign, advancedInPart } from '../../control-plane/campaigns/executor.js';
import { startCampaignScheduler } from '../../control-plane/campaigns/scheduler.js';
import { createCampaign } from '../../control-plane/campaigns/service.js';
import { specFromBody } from '../../control-plane/campaigns/spec.js';
import { twoViews } from './file-context.js';

/**
 * A wave bigger than the slice is assigned in several write transactions (campaigns/executor.ts
 * WAVE_SLICE, issue 17: 90,000 rows in one write held SQLite's lock 8.3 s), on a real libSQL file:
 * the driving process's scheduler commits each slice and comes back for the rest at once.
 */

let a: ControlPlaneContext;
let b: ControlPlaneContext;
let close: () => void;
const actor: OperatorActor = { kind: 'operator', id: 'test', role: 'admin' };
const DEVICES = 10;

beforeEach(async () => {
  ({ a, b, close } = await twoViews('berth-wave-slices-'));
});

afterEach(() => close());

async function exec(sql: string, args: (string | number | null)[] = []): Promise<void> {
  await a.client.execute({ sql, args });
}

async function count(sql: string, args: (string | number)[] = []): Promise<number> {
  return Number((await a.client.execute({ sql, args })).rows[0].n);
}

function spec(version: string): string {
  const parsed = parseManifest(`name: app\nversion: ${version}\nservices:\n  web:\n    image: registry.example.com/app@sha256:${'a'.repeat(64)}\n`, 'app.yaml');
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  return JSON.stringify(parsed.manifest);
}

async function fleet(): Promise<void> {
  for (let i = 0; i < DEVICES; i++) await exec("INSERT INTO devices (id, serial, public_key, labels, status, created_at, token_epoch) VALUES (?, ?, 'pk', '{}', 'enrolled', 1, 0)", [`d${i}`, `S-${i}`]);
  for (const [id, version] of [['m1', '1.0.0'], ['m2', '2.0.0']]) {
    await exec("INSERT INTO manifests (id, name, version, digest, spec, source, published_at, published_by) VALUES (?, 'app', ?, ?, ?, '', 1, 't')", [id, version, `sha256:${id}`, spec(version)]);
  }
  for (let i = 0; i < DEVICES; i++) await exec("INSERT INTO desired (device_id, manifest_id, sequence, issued_at) VALUES (?, 'm1', 1, 1)", [`d${i}`]);
}

/** Wave 1 (one device) assigned at creation and reported running through process B: wave 2 (nine) is next. */
async function campaignAtWave2(): Promise<string> {
  await fleet();
  const body = createCampaignBody.parse({ manifest: 'app@2.0.0', waves: ['10%', '100%'], start: true });
  const out = await createCampaign(a, actor, { spec: specFromBody(body), supersede: false, start: true });
  if (out.kind !== 'created') throw new Error(out.kind);
  const first = String((await a.client.execute({ sql: "SELECT device_id FROM campaign_devices WHERE campaign_id = ? AND state = 'assigned'", args: [out.id] })).rows[0].device_id);
  const sequence = await count('SELECT sequence AS n FROM desired WHERE device_id = ?', [first]);
  const report = { sequence: 1, desiredSequence: sequence, running: 'app@2.0.0', phase: 'running', bytes: { total: 1, done: 1 }, services: { web: { image: 'x', status: 'running', health: 'none', restarts: 0 } }, at: '2026-01-01T00:00:00Z' } as DeviceReport;
  expect((await new ReportWriter(b).submit(first, report, Date.now())).accepted).toBe(true);
  return out.id;
}

const assigned = (id: string) => count("SELECT count(*) AS n FROM campaign_devices WHERE campaign_id = ? AND wave = 1 AND state = 'assigned'", [id]);

describe('a wave bigger than the slice', () => {
  it('is assigned a slice a transaction by the scheduler, every device of it in the end', async () => {
    const id = await campaignAtWave2();
    expect(await assigned(id)).toBe(0);
    // What each write of the driving process left committed: the wave's assigned members.
    const after: number[] = [];
    const counted: ControlPlaneContext = {
      ...a,
      write: async (fn) => {
        const out = await a.write(fn);
        after.push(await assigned(id));
        return out;
      },
    };
    const scheduler = startCampaignScheduler(counted, { tickMs: 3_600_000, waveSlice: 4 });
    try {
      await scheduler.idle();
    } finally {
      scheduler.stop();
    }
    expect(after.filter((n, i) => n > 0 && n !== after[i - 1])).toEqual([4, 8, 9]);
    expect(await count('SELECT count(*) AS n FROM desired WHERE manifest_id = ?', ['m2'])).toBe(DEVICES);
  });

  it('stops between slices once this process no longer drives (the lease moved on)', async () => {
    const id = await campaignAtWave2();
    let driving = true;
    const counted: ControlPlaneContext = {
      ...a,
      write: async (fn) => {
        const out = await a.write(fn);
        if ((await assigned(id)) > 0) driving = false;
        return out;
      },
    };
    const scheduler = startCampaignScheduler(counted, { tickMs: 3_600_000, waveSlice: 4, drives: () => driving });
    try {
      await scheduler.idle();
    } finally {
      scheduler.stop();
    }
    expect(await assigned(id)).toBe(4);
  });

  it('stops advancing at a slice and says so; the next advance goes on', async () => {
    const id = await campaignAtWave2();
    await a.write(async (tx) => {
      // The reconcile's decision on wave 1's report, as the scheduler's tick makes it.
      await tx.run(sql`UPDATE campaign_devices SET state = 'succeeded' WHERE campaign_id = ${id} AND wave = 0`);
    });
    const first = await a.write((tx) => advanceCampaign(a, tx, id, 5));
    expect(first[first.length - 1]).toMatchObject({ kind: 'assign-wave', wave: 1, count: 5 });
    expect(advancedInPart(first, 5)).toBe(true);
    expect(await assigned(id)).toBe(5);
    const second = await a.write((tx) => advanceCampaign(a, tx, id, 5));
    expect(second[second.length - 1]).toMatchObject({ kind: 'assign-wave', wave: 1, count: 4 });
    expect(advancedInPart(second, 5)).toBe(false);
    expect(await assigned(id)).toBe(9);
  });
});
