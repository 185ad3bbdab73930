import { setImmediate as turn } from 'node:timers/promises';
import type { ControlPlaneContext } from '../context.js';
import { advanceCampaign, advancedInPart, campaignNeedsAdvance, WAVE_SLICE } from './executor.js';
import { devicesChanged, deviceRevoked, recordReports } from './membership.js';
import { ACTIVE_STATUSES } from './planner.js';
import { reportReconciler } from './reconcile.js';
import { parseSelector } from '../selector.js';
import { activeCampaignIds, deviceSlices, dropUnmatchedPending, joinMatchingDevices, loadCampaign } from './store.js';

export interface CampaignScheduler {
  stop(): void;
  /** Resolves once every queued advance has run (tests and shutdown). */
  idle(): Promise<void>;
  /** Ticks this process ran as the campaign driver (the /metrics gauge berth_cp_campaign_ticks). */
  driven: { ticks: number };
}

/**
 * Drives running campaigns, in the one process that `drives()` (the lease holder, lease.ts): a tick every `tickMs` (soaks ending, windows opening, device timeouts,
 * reports the event path missed) and, sooner, the device events. All state is in the database,
 * so a restarted control plane continues where the last one stopped; the first tick catches up.
 * Work is chained one job at a time, and events for the same campaign coalesce into one advance.
 * Every process records its own devices' events (per-device conditional writes, safe in many);
 * only the driver advances campaigns, and a new driver sweeps membership after its first tick.
 */
/** Devices per write of the membership sweep: a 100,000-device fleet is 50 short writes, not one long one. */
const SWEEP_SLICE = 2000;
/** Reports decided in one job: one write of at most this many outcome updates. */
const REPORT_BATCH = 2000;

export function startCampaignScheduler(ctx: ControlPlaneContext, opts: { tickMs?: number; sweepMs?: number; drives?: () => boolean; waveSlice?: number } = {}): CampaignScheduler {
  const tickMs = opts.tickMs ?? 1000;
  const waveSlice = opts.waveSlice ?? WAVE_SLICE;
  const drives = opts.drives ?? (() => true);
  const sweepEvery = Math.max(1, Math.round((opts.sweepMs ?? 60_000) / tickMs));
  let stopped = false;
  const driven = { ticks: 0 };
  let chain: Promise<void> = Promise.resolve();
  const queued = new Set<string>();
  const reports: Parameters<typeof recordReports>[1] = [];
  const changedDevices = new Set<string>();
  const reconciler = reportReconciler(ctx);

  function enqueue(label: string, job: () => Promise<void>): void {
    if (stopped) return;
    chain = chain.then(async () => {
      if (stopped) return;
      try {
        await job();
      } catch (err) {
        // A job cut short by shutdown (the database closed under it) is no failure; the next start redoes it.
        if (stopped) ctx.log.debug({ err, job: label }, 'campaign scheduler job cut short by shutdown');
        else ctx.log.error({ err, job: label }, 'campaign scheduler job failed');
      }
    });
  }

  async function advance(ids: string[]): Promise<void> {
    for (const id of ids) {
      // A big wave is assigned a slice a transaction (executor.ts WAVE_SLICE): each a write of its
      // own, so the writer process's reports and the lease's renewal get SQLite's lock between them.
      if (stopped) return;
      if (!(await campaignNeedsAdvance(ctx, id))) continue;
      // The lease may move meanwhile: its new holder goes on from the database.
      while (advancedInPart(await ctx.write((tx) => advanceCampaign(ctx, tx, id, waveSlice)), waveSlice) && !stopped && drives()) await turn();
    }
  }

  function advanceSoon(ids: string[]): void {
    // Another process drives: its next tick advances these (their state is in the database).
    if (!drives()) return;
    for (const id of ids) {
      if (queued.has(id)) continue;
      queued.add(id);
      enqueue(`advance ${id}`, async () => {
        queued.delete(id);
        await advance([id]);
      });
    }
  }

  /** One job for the reports waiting now (at most REPORT_BATCH; the rest get the next job): runs while any wait. */
  function enqueueReports(): void {
    enqueue('reports', async () => {
      const batch = reports.splice(0, REPORT_BATCH);
      if (reports.length) enqueueReports();
      advanceSoon(await recordReports(ctx, batch));
    });
  }

  /**
   * Enrolled or relabelled devices, decided in one write per job (at most REPORT_BATCH devices),
   * not a job and a write each: 100,000 enrollments queued 100,000 writes on this chain, and the
   * campaign's reports and ticks waited behind them (the fleet-sim stall of issue 17). A device
   * named twice before its job runs is decided once, on its state then, as the second would be.
   */
  function deviceEvent(deviceId: string): void {
    changedDevices.add(deviceId);
    if (changedDevices.size === 1) enqueueDeviceChanges();
  }

  function enqueueDeviceChanges(): void {
    enqueue('devices', async () => {
      const batch = [...changedDevices].slice(0, REPORT_BATCH);
      for (const id of batch) changedDevices.delete(id);
      if (changedDevices.size) enqueueDeviceChanges();
      // No campaign to join or leave: no write at all. The event follows the device's commit, so a
      // campaign committed after this read finds the device itself (creation and start join the
      // matching devices), and one committed before is seen here.
      if (!(await activeCampaignIds(ctx.db, [...ACTIVE_STATUSES])).length) return;
      advanceSoon(await ctx.write((tx) => devicesChanged(ctx, tx, batch)));
    });
  }

  async function tick(): Promise<void> {
    const changed = await reconciler.pass();
    if (changed.length) ctx.log.debug({ campaigns: changed }, 'campaign reports reconciled');
    // The pass's read of a second's reports and the planner's counts over every member are each
    // ~0.1 s on the starved lease holder at 100,000 devices: its requests are served between them.
    await turn();
    await advance(await activeCampaignIds(ctx.db, ['running']));
  }

  /**
   * Set-based membership sweep: devices enrolled or relabelled while no control plane was
   * listening (or through another process) join, pending ones that stopped matching leave.
   */
  async function sweepMembership(): Promise<void> {
    const ids = await activeCampaignIds(ctx.db, ['running', 'paused']);
    if (!ids.length) return;
    const slices = await deviceSlices(ctx.db, SWEEP_SLICE);
    for (const id of ids) {
      let changed = 0;
      for (const slice of slices) {
        if (stopped) return;
        changed += await ctx.write(async (tx) => {
          const campaign = await loadCampaign(tx, id);
          if (!campaign) return 0;
          const selector = parseSelector(campaign.spec.selector);
          const now = ctx.now().getTime();
          return (await dropUnmatchedPending(tx, id, selector, now, slice)) + (await joinMatchingDevices(tx, id, selector, now, true, undefined, slice));
        });
        await turn();
      }
      if (changed > 0) advanceSoon([id]);
    }
  }

  const offs = [
    ctx.events.on('report', ({ deviceId, report }) => {
      // Reports that arrive while the chain is busy join one job (one read, at most one write), not a job each.
      reports.push({ deviceId, report });
      if (reports.length === 1) enqueueReports();
    }),
    ctx.events.on('device-enrolled', ({ deviceId }) => deviceEvent(deviceId)),
    ctx.events.on('device-labels-changed', ({ deviceId }) => deviceEvent(deviceId)),
    ctx.events.on('device-revoked', ({ deviceId }) => {
      enqueue(`revoked ${deviceId}`, async () => advanceSoon(await ctx.write((tx) => deviceRevoked(tx, deviceId, ctx.now().getTime()))));
    }),
  ];

  let ticking = false;
  let ticks = 0;
  let driving = false;
  function onTimer(): void {
    // A slow tick (a big wave) must not pile up behind itself.
    if (ticking) return;
    const was = driving;
    driving = drives();
    if (!driving) return;
    ticking = true;
    enqueue('tick', async () => {
      try {
        // Just took over driving: catch up on membership changes made while nobody (or another process) drove,
        // after the tick: a wave half assigned in slices goes on first (the sweep is 50 writes at 100,000 devices,
        // and a takeover in the last wave held its next slice 17 s, SCALING.md); the sweep advances what it changed.
        if (!was) reconciler.reset();
        await tick();
        if (!was) await sweepMembership();
        driven.ticks++;
        if (++ticks % sweepEvery === 0) await sweepMembership();
      } finally {
        ticking = false;
      }
    });
  }
  onTimer();
  const timer = setInterval(onTimer, tickMs);
  timer.unref();

  return {
    stop() {
      stopped = true;
      clearInterval(timer);
      for (const off of offs) off();
    },
    idle: () => chain,
    driven,
  };
}
