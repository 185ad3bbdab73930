import { sql } from 'drizzle-orm';
import { skipUngrantedLateJoiners } from '../policy/late-joiners.js';
import { assignBatch } from '../devices/desired.js';
import { noteDesiredChangesOf } from '../devices/change-feed.js';
import { skipLacking, snapshotWave } from '../vars/late-joiners.js';
import type { ConfigContext } from '../devices/device-config.js';
import type { ControlPlaneContext, Tx } from '../context.js';
import { planCampaign, type CampaignStep, type CampaignStepKind } from './planner.js';
import { loadCampaign, loadCounts, releaseAll, updateProgress, type CampaignRecord } from './store.js';
import { deviceTimeoutError } from './outcome.js';
import { publishCampaignEvent } from '../webhooks/outbox.js';
import { formatDuration } from '../../common/grammar.js';
import type { Manifest } from '../../manifests/model.js';
import { secretsUsed } from '../../manifests/secrets.js';
import { variableNeeds } from '../../manifests/variables.js';

/**
 * Thin effects: each planner step kind maps to one database effect. The executor plans, applies,
 * and plans again on the new state until only waiting is left, all in the caller's transaction.
 */

export const SYSTEM_ACTOR = 'system:campaigns';

/** What applying a step needs from the service: wake-ups after commit, the audit log, the log. */
export type CampaignEffects = Pick<ControlPlaneContext, 'afterCommit' | 'waiters' | 'audit' | 'log' | 'now'> & ConfigContext;

export interface StepEnv {
  ctx: CampaignEffects;
  tx: Tx;
  campaign: CampaignRecord;
  now: number;
}

type StepExecutors = { [K in CampaignStepKind]: (env: StepEnv, step: Extract<CampaignStep, { kind: K }>) => Promise<void> };

/**
 * Assigns the campaign's release to `count` pending devices. Each device's config (variables,
 * secrets) is resolved now and stored with its desired row (devices/assignBatch: the sequence only
 * goes up, the replaced manifest and config are remembered, a device that already has both only
 * changes campaign); a device that lacks a value is skipped and failed with what it lacks.
 * A manifest that needs no config takes the set-based path without reading a device's serial or
 * labels: its every config would be null (device-config.ts snapshotConfig). Devices' long polls
 * wake after commit.
 */
async function assignWave({ ctx, tx, campaign, now }: StepEnv, wave: number, count: number): Promise<string[]> {
  const plain = !needsConfig(await manifestSpec(tx, campaign.manifestId));
  const pick = sql`UPDATE campaign_devices SET state = 'assigned', wave = ${wave}, assigned_at = ${now}, assigning = 1,
      previous_manifest_id = (SELECT ds.manifest_id FROM desired ds WHERE ds.device_id = campaign_devices.device_id)
    WHERE campaign_id = ${campaign.id} AND device_id IN (
      SELECT device_id FROM campaign_devices WHERE campaign_id = ${campaign.id} AND state = 'pending'
      ORDER BY late, joined_at, device_id LIMIT ${count})`;
  let ids: string[];
  // Whether a member of this slice may already hold a report about its document: see below.
  let reported = true;
  if (plain) {
    ids = (await tx.all<{ device_id: string }>(sql`${pick} RETURNING device_id`)).map((p) => p.device_id);
    reported = (await assignPlain(tx, campaign, now)) > 0;
    // assignBatch writes its own change-feed rows; the set-based path writes them in one statement.
    await noteDesiredChangesOf(tx, sql`SELECT device_id FROM campaign_devices WHERE campaign_id = ${campaign.id} AND assigning = 1`, now);
  } else {
    const picked = await tx.all<{ device_id: string; serial: string; labels: string }>(sql`${pick}
      RETURNING device_id, (SELECT serial FROM devices d WHERE d.id = campaign_devices.device_id) AS serial,
        (SELECT labels FROM devices d WHERE d.id = campaign_devices.device_id) AS labels`);
    const { ready, lacking } = await snapshotWave(ctx, tx, campaign.manifestId, picked.map((p) => ({ id: p.device_id, serial: p.serial, labels: JSON.parse(p.labels) as Record<string, string> })));
    await skipLacking(tx, campaign.id, lacking, now);
    if (lacking.length) ctx.log.warn({ campaign: campaign.id, devices: lacking.length }, 'devices lacking variables skipped');
    await assignBatch(ctx, tx, campaign.manifestId, campaign.id, ready);
    ids = ready.map((r) => r.id);
  }
  await tx.run(sql`UPDATE campaign_devices SET assigning = 0,
      desired_sequence = (SELECT ds.sequence FROM desired ds WHERE ds.device_id = campaign_devices.device_id)
    WHERE campaign_id = ${campaign.id} AND assigning = 1`);
  // A member whose document did not change (it already had the release, so its sequence stayed) may
  // hold a report about it from before, which no later report announces: the reconcile and the byte
  // totals then read every member again (reconcile.ts, bytes.ts), told by the campaign's
  // `assignments`. Any other member's reports about its new document come after this commit, above
  // their marks. Not bumped for a slice without such a member: at 100,000 devices each of the last
  // wave's 36 slices made both read all members again (0.1-0.7 s a read, SCALING.md).
  if (reported) await tx.run(sql`UPDATE campaigns SET assignments = assignments + 1 WHERE id = ${campaign.id}`);
  ctx.afterCommit(tx, () => {
    for (const id of ids) ctx.waiters.wake(id);
  });
  return ids;
}

async function manifestSpec(tx: Tx, manifestId: string): Promise<Manifest> {
  const [m] = await tx.all<{ spec: string }>(sql`SELECT spec FROM manifests WHERE id = ${manifestId}`);
  return JSON.parse(m.spec) as Manifest;
}

/** Whether a device's config for this manifest can be other than null: it uses a variable or mounts a secret. */
function needsConfig(spec: Manifest): boolean {
  return variableNeeds(spec).length > 0 || secretsUsed(spec).length > 0;
}

/**
 * The wave of a manifest without variables or secrets (every config null), set-based: a few
 * statements whatever the wave's size. The same decisions as assignBatch (desired.ts): a device
 * whose row has another manifest, or a config, gets a new sequence; one with the same manifest and
 * no config only changes campaign. The batch is the campaign's rows marked `assigning`. Returns how
 * many only changed campaign (their sequence stayed).
 */
async function assignPlain(tx: Tx, campaign: CampaignRecord, now: number): Promise<number> {
  const batch = sql`SELECT device_id FROM campaign_devices WHERE campaign_id = ${campaign.id} AND assigning = 1`;
  // First, so that it counts only those. `+manifest_id`: by the manifest's index SQLite read every
  // device already on it (up to the whole fleet in the last wave: 32 ms a slice of 2,500 at 100,000)
  // to update the slice's few.
  const kept = await tx.run(sql`UPDATE desired SET campaign_id = ${campaign.id}
    WHERE device_id IN (${batch}) AND +manifest_id = ${campaign.manifestId} AND config IS NULL`);
  await tx.run(sql`UPDATE desired SET previous_manifest_id = manifest_id, manifest_id = ${campaign.manifestId},
      previous_config = config, config = NULL, sequence = sequence + 1, campaign_id = ${campaign.id}, issued_at = ${now}
    WHERE device_id IN (${batch}) AND (manifest_id <> ${campaign.manifestId} OR config IS NOT NULL)`);
  await tx.run(sql`INSERT INTO desired (device_id, manifest_id, sequence, campaign_id, previous_manifest_id, issued_at)
    SELECT device_id, ${campaign.manifestId}, 1, ${campaign.id}, NULL, ${now} FROM campaign_devices
    WHERE campaign_id = ${campaign.id} AND assigning = 1 AND device_id NOT IN (SELECT device_id FROM desired)`);
  return kept.rowsAffected;
}

/**
 * Sends every device the campaign touched, and still on its release, back to the manifest it ran
 * before. A device the campaign gave its first release has nothing to go back to and keeps it.
 * Set-based, mirroring rollbackRelease (desired.ts): the manifests (and configs) swap and the sequence goes up,
 * so the device accepts the older release as a newer document; long polls wake after commit.
 */
export async function rollbackCampaign({ ctx, tx, campaign, now }: StepEnv): Promise<{ rolledBack: number; kept: number }> {
  await tx.run(sql`UPDATE campaign_devices SET assigning = 1
    WHERE campaign_id = ${campaign.id} AND state IN ('assigned', 'succeeded', 'failed')
      AND EXISTS (SELECT 1 FROM desired ds WHERE ds.device_id = campaign_devices.device_id
        AND ds.campaign_id = ${campaign.id} AND ds.manifest_id = ${campaign.manifestId}
        AND ds.previous_manifest_id IS NOT NULL AND ds.previous_manifest_id IS campaign_devices.previous_manifest_id)`);
  await tx.run(sql`UPDATE desired SET manifest_id = previous_manifest_id, previous_manifest_id = manifest_id,
      config = previous_config, previous_config = config, sequence = sequence + 1, issued_at = ${now}
    WHERE device_id IN (SELECT device_id FROM campaign_devices WHERE campaign_id = ${campaign.id} AND assigning = 1)`);
  await noteDesiredChangesOf(tx, sql`SELECT device_id FROM campaign_devices WHERE campaign_id = ${campaign.id} AND assigning = 1`, now);
  const rolled = await tx.all<{ device_id: string }>(sql`UPDATE campaign_devices SET state = 'rolled-back', finished_at = ${now}, assigning = 0
    WHERE campaign_id = ${campaign.id} AND assigning = 1 RETURNING device_id`);
  const ids = rolled.map((r) => r.device_id);
  ctx.afterCommit(tx, () => {
    for (const id of ids) ctx.waiters.wake(id);
  });
  const kept = await tx.all<{ n: number }>(sql`SELECT count(*) AS n FROM campaign_devices
    WHERE campaign_id = ${campaign.id} AND state IN ('assigned', 'succeeded', 'failed')`);
  return { rolledBack: ids.length, kept: Number(kept[0]?.n ?? 0) };
}

export const STEP_EXECUTORS: StepExecutors = {
  'assign-wave': async (env, step) => {
    const skipped = await skipUngrantedLateJoiners(env.tx, env.campaign, env.now);
    if (skipped) env.ctx.log.warn({ campaign: env.campaign.id, devices: skipped }, 'late joiners lacking privileges skipped');
    const ids = await assignWave(env, step.wave, step.count);
    await updateProgress(env.tx, env.campaign.id, env.now, { nextWindowAt: null });
    env.ctx.log.info({ campaign: env.campaign.id, wave: step.wave, devices: ids.length }, 'campaign wave assigned');
  },
  'mark-failed': async ({ tx, campaign, now }, step) => {
    await tx.run(sql`UPDATE campaign_devices SET state = 'failed', finished_at = ${now},
        last_error = ${deviceTimeoutError(formatDuration(campaign.spec.deviceTimeoutMs))}
      WHERE campaign_id = ${campaign.id} AND state = 'assigned' AND assigned_at <= ${step.assignedBefore}`);
  },
  'start-soak': async ({ tx, campaign, now }, step) => {
    await updateProgress(tx, campaign.id, now, { currentWave: step.wave, soakUntil: step.until });
  },
  'advance-wave': async ({ tx, campaign, now }, step) => {
    await updateProgress(tx, campaign.id, now, { currentWave: step.wave, soakUntil: null });
    // Waves are numbered from 1 wherever people read them.
    await publishCampaignEvent(tx, now, 'campaign.wave_started', campaign, { wave: step.wave + 1, waves: campaign.spec.waves.length });
  },
  'wait-window': async ({ tx, campaign, now }, step) => {
    if (campaign.nextWindowAt !== step.opensAt) await updateProgress(tx, campaign.id, now, { nextWindowAt: step.opensAt });
  },
  complete: async ({ ctx, tx, campaign, now }) => {
    await updateProgress(tx, campaign.id, now, { status: 'completed', finishedAt: now, soakUntil: null, nextWindowAt: null });
    await releaseAll(tx, campaign.id);
    await ctx.audit(tx, { actor: SYSTEM_ACTOR, action: 'campaign.complete', target: campaign.id, before: { status: campaign.progress.status }, after: { status: 'completed' } });
    await publishCampaignEvent(tx, now, 'campaign.completed', campaign, { status: 'completed' });
    ctx.log.info({ campaign: campaign.id }, 'campaign completed');
  },
  pause: async ({ ctx, tx, campaign, now }, step) => {
    await updateProgress(tx, campaign.id, now, { status: 'paused', statusReason: step.reason });
    await ctx.audit(tx, { actor: SYSTEM_ACTOR, action: 'campaign.pause', target: campaign.id, before: { status: campaign.progress.status }, after: { status: 'paused', reason: step.reason } });
    await publishCampaignEvent(tx, now, 'campaign.paused', campaign, { status: 'paused', reason: step.reason });
    ctx.log.warn({ campaign: campaign.id, reason: step.reason }, 'campaign paused by its failure rule');
  },
  rollback: async (env, step) => {
    const { ctx, tx, campaign, now } = env;
    const result = await rollbackCampaign(env);
    await updateProgress(tx, campaign.id, now, { status: 'failed', statusReason: step.reason, finishedAt: now, soakUntil: null });
    await releaseAll(tx, campaign.id);
    await ctx.audit(tx, { actor: SYSTEM_ACTOR, action: 'campaign.rollback', target: campaign.id, before: { status: campaign.progress.status }, after: { status: 'failed', reason: step.reason, ...result } });
    await publishCampaignEvent(tx, now, 'campaign.failed', campaign, { status: 'failed', reason: step.reason, ...result });
    ctx.log.warn({ campaign: campaign.id, reason: step.reason, ...result }, 'campaign failed and rolled back');
  },
};

async function executeStep(env: StepEnv, step: CampaignStep): Promise<void> {
  // The mapped type guarantees the executor matches the step kind; TypeScript cannot narrow the pair.
  const run = STEP_EXECUTORS[step.kind] as (env: StepEnv, step: CampaignStep) => Promise<void>;
  await run(env, step);
}

const MAX_ROUNDS = 20;
/**
 * Devices a wave assigns in one write transaction: a bigger wave goes in slices, one transaction
 * each, and the driver comes back for the rest at once (scheduler.ts). The last wave of a
 * 100,000-device campaign, 90,000 rows in one write, held SQLite's lock 8.3 s: the writer process's
 * reports and the lease's renewal (busy after 5 s) waited behind it, and its 90,000 woken polls hit
 * every worker in the same moment (SCALING.md).
 */
export const WAVE_SLICE = 2500;

/**
 * Whether the campaign has something to do now, decided on a read outside the write lock so an
 * idle tick over a large campaign never holds up other writers. advanceCampaign plans again
 * inside the transaction, so a stale read here costs at most one empty write.
 */
export async function campaignNeedsAdvance(ctx: Pick<ControlPlaneContext, 'db' | 'now'>, campaignId: string): Promise<boolean> {
  const campaign = await loadCampaign(ctx.db, campaignId);
  if (!campaign || campaign.progress.status !== 'running') return false;
  const steps = planCampaign(campaign.spec, campaign.progress, await loadCounts(ctx.db, campaign), ctx.now().getTime());
  return steps.some((s) => s.kind !== 'wait-window' || s.opensAt !== campaign.nextWindowAt);
}

/**
 * Plans and applies until the campaign only waits (for reports, a soak, a window), or until it has
 * assigned `waveSlice` devices of a wave: the applied steps then end with that assign-wave, its count
 * cut to the slice, and the caller commits and advances again for the rest (advancedInPart).
 */
export async function advanceCampaign(ctx: CampaignEffects, tx: Tx, campaignId: string, waveSlice = WAVE_SLICE): Promise<CampaignStep[]> {
  const applied: CampaignStep[] = [];
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const campaign = await loadCampaign(tx, campaignId);
    if (!campaign || campaign.progress.status !== 'running') break;
    const now = ctx.now().getTime();
    const steps = planCampaign(campaign.spec, campaign.progress, await loadCounts(tx, campaign), now);
    const env: StepEnv = { ctx, tx, campaign, now };
    for (const planned of steps) {
      const step = planned.kind === 'assign-wave' && planned.count > waveSlice ? { ...planned, count: waveSlice } : planned;
      await executeStep(env, step);
      applied.push(step);
      if (step !== planned) return applied;
      // Later steps of one plan see the campaign row as the earlier ones left it.
      const fresh = await loadCampaign(tx, campaignId);
      if (fresh) env.campaign = fresh;
    }
    if (steps.every((s) => s.kind === 'wait-window')) break;
  }
  return applied;
}

/** Whether advanceCampaign stopped at a slice of a wave (its last step an assign-wave of exactly `waveSlice`): more to assign in the next transaction. */
export function advancedInPart(applied: CampaignStep[], waveSlice = WAVE_SLICE): boolean {
  const last = applied[applied.length - 1];
  return last?.kind === 'assign-wave' && last.count === waveSlice;
}
