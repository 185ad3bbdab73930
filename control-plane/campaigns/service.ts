import { randomUUID } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { and, eq, sql } from 'drizzle-orm';
import type { ControlPlaneContext, Tx } from '../context.js';
import { manifests } from '../db/schema.js';
import type { OperatorActor } from '../http.js';
import { parseSelector } from '../selector.js';
import { advanceCampaign, rollbackCampaign, type CampaignEffects } from './executor.js';
import { DEVICE_TIMEOUT_ERROR, transition, type OperatorAction } from './outcome.js';
import { waveTargets, type CampaignStep } from './planner.js';
import { formatDuration, formatWave } from '../../common/grammar.js';
import type { CampaignSpec } from './spec.js';
import { findConflicts, insertCampaign, joinMatchingDevices, loadCampaign, releaseAll, releaseFromOtherCampaigns, updateProgress, type CampaignRecord, type Conflict, type Reader } from './store.js';
import { publishCampaignEvent } from '../webhooks/outbox.js';
import { windowState } from './window.js';
import { campaignBytes } from './bytes.js';

/** What the operator actions need: reads, the writer, and what applying steps needs. */
type CampaignServices = CampaignEffects & Pick<ControlPlaneContext, 'db' | 'write' | 'events'>;

/** The campaign operations behind the routes; each runs in one write transaction. */

export type CreateOutcome =
  | { kind: 'created'; id: string; steps: CampaignStep[] }
  | { kind: 'unknown-manifest'; release: string }
  | { kind: 'conflict'; total: number; conflicts: Conflict[] };

const CONFLICT_SAMPLE = 1000;

class ConflictAbort extends Error {
  constructor(readonly total: number, readonly conflicts: Conflict[]) {
    super('campaign conflicts with active campaigns');
  }
}

export async function createCampaign(
  ctx: CampaignServices,
  actor: OperatorActor,
  input: { name?: string; spec: CampaignSpec; supersede: boolean; start: boolean; onlyDevices?: string[] },
): Promise<CreateOutcome> {
  const [name, version] = input.spec.release.split('@');
  const manifest = (await ctx.db.select({ id: manifests.id }).from(manifests).where(and(eq(manifests.name, name), eq(manifests.version, version))).limit(1))[0];
  if (!manifest) return { kind: 'unknown-manifest', release: input.spec.release };
  const selector = parseSelector(input.spec.selector);
  const id = `cmp_${randomUUID()}`;
  try {
    return await ctx.write(async (tx) => {
      const now = ctx.now().getTime();
      // Checked inside the write transaction, so no other campaign can take the devices meanwhile.
      const conflicts = await findConflicts(tx, id, selector, CONFLICT_SAMPLE);
      if (conflicts.total > 0 && !input.supersede) throw new ConflictAbort(conflicts.total, conflicts.sample);
      const superseded = conflicts.total > 0 ? await releaseFromOtherCampaigns(tx, id, selector, now) : 0;
      await insertCampaign(tx, { id, name: input.name ?? input.spec.release, manifestId: manifest.id, spec: input.spec, createdBy: actorId(actor), now });
      let members = await joinMatchingDevices(tx, id, selector, now, false);
      // `--reconfigure` (vars/reconfigure.ts): only the devices whose values changed stay members.
      if (input.onlyDevices) members -= await keepOnly(tx, id, new Set(input.onlyDevices));
      await ctx.audit(tx, { actor, action: 'campaign.create', target: id, after: { ...input.spec, devices: members, superseded, supersededFrom: [...new Set(conflicts.sample.map((c) => c.campaignId))] } });
      await publishCampaignEvent(tx, now, 'campaign.created', { id, name: input.name ?? input.spec.release, release: input.spec.release }, { status: 'draft', selector: input.spec.selector, devices: members, createdBy: actorId(actor) });
      const steps = input.start ? await startInTx(ctx, tx, actor, id) : [];
      ctx.afterCommit(tx, () => ctx.events.emit('campaign-created', { campaignId: id }));
      return { kind: 'created' as const, id, steps };
    });
  } catch (err) {
    if (err instanceof ConflictAbort) return { kind: 'conflict', total: err.total, conflicts: err.conflicts };
    throw err;
  }
}

async function keepOnly(tx: Tx, campaignId: string, keep: Set<string>): Promise<number> {
  const joined = await tx.all<{ device_id: string }>(sql`SELECT device_id FROM campaign_devices WHERE campaign_id = ${campaignId}`);
  const drop = joined.map((r) => r.device_id).filter((d) => !keep.has(d));
  for (let i = 0; i < drop.length; i += 500) {
    await tx.run(sql`DELETE FROM campaign_devices WHERE campaign_id = ${campaignId} AND device_id IN (${sql.join(drop.slice(i, i + 500).map((d) => sql`${d}`), sql`, `)})`);
  }
  return drop.length;
}

function actorId(actor: OperatorActor): string {
  return `${actor.kind}:${actor.id}`;
}

async function startInTx(ctx: CampaignServices, tx: Tx, actor: OperatorActor, id: string): Promise<CampaignStep[]> {
  const now = ctx.now().getTime();
  await updateProgress(tx, id, now, { status: 'running', startedAt: now, currentWave: 0 });
  await ctx.audit(tx, { actor, action: 'campaign.start', target: id, before: { status: 'draft' }, after: { status: 'running' } });
  const started = await loadCampaign(tx, id);
  if (started) {
    await publishCampaignEvent(tx, now, 'campaign.started', started, { status: 'running', by: actorId(actor) });
    await publishCampaignEvent(tx, now, 'campaign.wave_started', started, { wave: 1, waves: started.spec.waves.length });
  }
  return advanceCampaign(ctx, tx, id);
}

export type ActionOutcome = { kind: 'done'; campaign: CampaignRecord } | { kind: 'not-found' } | { kind: 'refused'; status: string };

/** start / pause / resume / abort, as an operator asks; refused when the status does not allow it. */
export async function operatorAction(ctx: CampaignServices, actor: OperatorActor, id: string, action: OperatorAction): Promise<ActionOutcome> {
  return ctx.write(async (tx) => {
    const campaign = await loadCampaign(tx, id);
    if (!campaign) return { kind: 'not-found' as const };
    const before = campaign.progress.status;
    const next = transition(before, action);
    if (next === null) return { kind: 'refused' as const, status: before };
    const now = ctx.now().getTime();
    if (action === 'start') {
      // Devices enrolled or relabelled while the campaign was a draft are part of its fleet too.
      await joinMatchingDevices(tx, id, parseSelector(campaign.spec.selector), now, false);
      await startInTx(ctx, tx, actor, id);
    } else if (action === 'pause') {
      await updateProgress(tx, id, now, { status: 'paused', statusReason: 'paused by an operator' });
      await ctx.audit(tx, { actor, action: 'campaign.pause', target: id, before: { status: before }, after: { status: next } });
      await publishCampaignEvent(tx, now, 'campaign.paused', campaign, { status: 'paused', reason: 'paused by an operator', by: actorId(actor) });
    } else if (action === 'resume') {
      // Resuming acknowledges the failures seen so far: they no longer count against the rules.
      await updateProgress(tx, id, now, { status: 'running', statusReason: null, failuresAcknowledgedAt: now });
      await ctx.audit(tx, { actor, action: 'campaign.resume', target: id, before: { status: before, reason: campaign.statusReason }, after: { status: next } });
      await publishCampaignEvent(tx, now, 'campaign.resumed', campaign, { status: 'running', by: actorId(actor) });
      await advanceCampaign(ctx, tx, id);
    } else {
      const result = await rollbackCampaign({ ctx, tx, campaign, now });
      await updateProgress(tx, id, now, { status: 'aborted', statusReason: 'aborted by an operator', finishedAt: now, soakUntil: null });
      await releaseAll(tx, id);
      await ctx.audit(tx, { actor, action: 'campaign.abort', target: id, before: { status: before }, after: { status: next, ...result } });
      await publishCampaignEvent(tx, now, 'campaign.aborted', campaign, { status: 'aborted', by: actorId(actor), ...result });
    }
    const after = await loadCampaign(tx, id);
    return { kind: 'done' as const, campaign: after as CampaignRecord };
  });
}

/** The member states, with the failed devices that timed out counted apart from the others. */
const STATES = ['pending', 'assigned', 'succeeded', 'failed', 'timed-out', 'rolled-back', 'left'] as const;
type StateCounts = Record<(typeof STATES)[number], number>;

function emptyCounts(): StateCounts {
  return { pending: 0, assigned: 0, succeeded: 0, failed: 0, 'timed-out': 0, 'rolled-back': 0, left: 0 };
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function campaignSummary(c: CampaignRecord) {
  return {
    id: c.id,
    name: c.name,
    manifest: c.release,
    selector: c.spec.selector,
    status: c.progress.status,
    statusReason: c.statusReason,
    // Waves are numbered from 1 wherever people read them.
    currentWave: c.progress.currentWave + 1,
    createdAt: iso(c.createdAt),
    createdBy: c.createdBy,
    startedAt: iso(c.startedAt),
    finishedAt: iso(c.finishedAt),
  };
}

/** What a status read needs: the reads, and the byte tallies this control plane keeps (bytes.ts). */
export type StatusReads = Pick<ControlPlaneContext, 'db' | 'byteTallies'>;

/** The status a release manager watches: per wave and per state, and who is failing and why. */
export async function campaignStatus(ctx: StatusReads, c: CampaignRecord, now: number, failingLimit = 100) {
  const db: Reader = ctx.db;
  // Counted from the campaign_devices_progress index alone; only failed rows are read for their
  // error (a timed-out device is a failed one whose error says so): at 100,000 members the status
  // read no longer visits every row (issue 17).
  const rows = await db.all<{ wave: number | null; bucket: keyof StateCounts; n: number }>(sql`
    SELECT wave, state AS bucket, count(*) AS n FROM campaign_devices WHERE campaign_id = ${c.id} GROUP BY wave, state`);
  const timedOut = await db.all<{ wave: number | null; n: number }>(sql`
    SELECT wave, count(*) AS n FROM campaign_devices WHERE campaign_id = ${c.id} AND state = 'failed'
      AND substr(last_error, 1, ${DEVICE_TIMEOUT_ERROR.length}) = ${DEVICE_TIMEOUT_ERROR} GROUP BY wave`);
  for (const t of timedOut) {
    const failed = rows.find((r) => r.bucket === 'failed' && r.wave === t.wave);
    if (failed) failed.n = Number(failed.n) - Number(t.n);
    rows.push({ wave: t.wave, bucket: 'timed-out', n: Number(t.n) });
  }
  const totals = emptyCounts();
  const perWave: StateCounts[] = c.spec.waves.map(() => emptyCounts());
  for (const r of rows) {
    totals[r.bucket] += Number(r.n);
    if (r.wave !== null && perWave[Number(r.wave)]) perWave[Number(r.wave)][r.bucket] += Number(r.n);
  }
  // The fleet a status shows is every member but those that left, rolled-back ones included: after
  // an abort the wave targets must still read against the fleet the campaign was rolling out to.
  const fleet = totals.pending + totals.assigned + totals.succeeded + totals.failed + totals['timed-out'] + totals['rolled-back'];
  const targets = waveTargets(c.spec.waves, fleet);
  // A failed device stays listed after the campaign rolled it back: its error is why. The states as
  // an IN list through the progress index (SQLite otherwise walked every member by its primary key).
  const failing = await db.all<{ deviceId: string; serial: string; wave: number; state: string; error: string | null; at: number | null }>(sql`
    SELECT cd.device_id AS deviceId, d.serial AS serial, cd.wave AS wave, cd.state AS state, cd.last_error AS error, cd.finished_at AS at
    FROM campaign_devices cd INDEXED BY campaign_devices_progress JOIN devices d ON d.id = cd.device_id
    WHERE cd.campaign_id = ${c.id} AND cd.state IN ('failed', 'rolled-back') AND (cd.state = 'failed' OR cd.last_error IS NOT NULL)
    ORDER BY cd.finished_at DESC LIMIT ${failingLimit}`);
  // The counts above and the byte catch-up below each read a whole campaign or a second's reports
  // (about 0.1 s each on a starved worker at 100,000 devices): the requests that came meanwhile are
  // served between them, not after both (the status worker's loop delay p99 was 0.95 s, SCALING.md).
  await nextTurn();
  // Kept per campaign and caught up on the devices that reported since the last read (bytes.ts).
  const bytes = await campaignBytes(db, ctx.byteTallies, c.id, `${c.assignments}:${fleet + totals.left}`);
  const window = c.spec.window
    ? { cron: c.spec.window.cron, duration: formatDuration(c.spec.window.durationMs), tz: c.spec.window.tz, ...windowView(windowState(c.spec.window, now)) }
    : null;
  return {
    ...campaignSummary(c),
    rules: {
      waves: c.spec.waves.map(formatWave),
      success: c.spec.success,
      maxFailures: c.spec.maxFailures,
      deviceTimeout: formatDuration(c.spec.deviceTimeoutMs),
      soak: formatDuration(c.spec.soakMs),
      onFailure: c.spec.onFailure,
    },
    soakUntil: iso(c.progress.soakUntil),
    window,
    devices: totals,
    waves: perWave.map((counts, i) => ({ wave: i + 1, target: formatWave(c.spec.waves[i]), cumulativeDevices: targets[i], devices: counts })),
    bytes,
    failing: failing.map((f) => ({ deviceId: f.deviceId, serial: f.serial, wave: Number(f.wave) + 1, state: f.state, error: f.error, at: iso(f.at === null ? null : Number(f.at)) })),
  };
}

function windowView(s: ReturnType<typeof windowState>) {
  return s.open ? { open: true, closesAt: iso(s.closesAt) } : { open: false, opensAt: iso(s.opensAt) };
}
