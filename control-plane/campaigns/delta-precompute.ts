import { sql } from 'drizzle-orm';
import { settledDeltaPlan } from '../../common/delta/plan-client.js';
import { layerActions } from '../../common/delta/wire.js';
import type { Manifest } from '../../manifests/model.js';
import { parseImageRef } from '../../manifests/image-ref.js';
import type { ControlPlaneContext } from '../context.js';
import { accessFor } from '../device-api/routes.js';
import { mintPullToken } from '../device-api/pull-tokens.js';
import { releaseSpec } from '../policy/service.js';
import { loadCampaign } from './store.js';

/**
 * Layer deltas prepared when a campaign is created (issue 11): the control plane asks the registry
 * proxy for the delta plans its devices will ask for, from each release the campaign's devices
 * report running to the campaign's release, so the proxy computes them before the first wave asks
 * (one computation per pair, cached, shared with every device). It runs beside the request, one
 * campaign at a time; a failure is logged and costs only the wait it was meant to save.
 */

/** At most this many (running release, platform) pairs are prepared from per campaign (the most common first). */
const MAX_FROM_RELEASES = 8;
/** How long one plan may stay pending before the preparation gives up on it (the proxy keeps computing). */
const PLAN_WAIT_MS = 10 * 60_000;

export interface DeltaRequest {
  /** The pinned image the devices update to. */
  target: string;
  /** The pinned images of one running release the delta may start from. */
  have: string[];
}

/**
 * What a device running `from` asks the proxy when it updates to `to`: per image of `to` it does
 * not hold, a plan from the images it runs that the update replaces (edge-daemon/download/delta.ts
 * asks the same way, so the proxy's cache answers both).
 */
export function deltaRequests(to: Manifest, from: Manifest): DeltaRequest[] {
  const pinned = (m: Manifest) => [...new Set(Object.values(m.services).map((s) => s.image).filter((i) => parseImageRef(i).digest))].sort();
  const targets = pinned(to);
  const held = pinned(from);
  const have = held.filter((i) => !targets.includes(i));
  if (have.length === 0) return [];
  return targets.filter((t) => !held.includes(t)).map((target) => ({ target, have }));
}

async function proxyImage(ctx: ControlPlaneContext, image: string): Promise<string> {
  return `${await ctx.registry.repositoryName(image)}@${parseImageRef(image).digest}`;
}

async function prepare(ctx: ControlPlaneContext, proxy: string, campaignId: string, signal: AbortSignal): Promise<void> {
  const campaign = await loadCampaign(ctx.db, campaignId);
  if (!campaign) return;
  const to = await releaseSpec(ctx.db, campaign.release);
  if (!to) return;
  // Per running release, the platforms its devices report (a fleet may mix arm64 and amd64): the
  // proxy resolves a multi-platform image to the one entry a device picks, and refuses to guess.
  const groups = await ctx.db.all<{ running: string; platform: string | null }>(sql`
    SELECT r.running AS running,
      (SELECT json_extract(h.report, '$.platform') FROM report_history h WHERE h.device_id = cd.device_id ORDER BY h.id DESC LIMIT 1) AS platform
    FROM campaign_devices cd JOIN reported r ON r.device_id = cd.device_id
    WHERE cd.campaign_id = ${campaignId} AND r.running IS NOT NULL AND r.running <> ${campaign.release}
    GROUP BY running, platform ORDER BY count(*) DESC LIMIT ${MAX_FROM_RELEASES}`);
  const log = ctx.log.child({ campaign: campaignId, release: campaign.release });
  for (const { running: release, platform } of groups) {
    signal.throwIfAborted();
    const from = await releaseSpec(ctx.db, release);
    const requests = from ? deltaRequests(to, from) : [];
    if (!from || requests.length === 0) continue;
    // A token for exactly the two releases: the proxy's pull scopes hold for the control plane too.
    const { token } = await mintPullToken(ctx.keys, 'control-plane', await accessFor(ctx.registry, [to, from]), Math.ceil(PLAN_WAIT_MS / 1000) + 60, ctx.now());
    for (const r of requests) {
      const request = { target: await proxyImage(ctx, r.target), have: await Promise.all(r.have.map((h) => proxyImage(ctx, h))), ...(platform ? { platform } : {}) };
      const plan = await settledDeltaPlan({ proxy, token, request, maxWaitMs: PLAN_WAIT_MS, signal, trust: ctx.registry.proxyTrust });
      const layers = Object.fromEntries(layerActions.map((a) => [a, plan.layers.filter((l) => l.action === a).length]));
      log.info({ from: release, platform, target: request.target, layers }, 'layer deltas prepared for the campaign');
    }
  }
}

/**
 * Listens for created campaigns and prepares their deltas, one campaign after the other. Without a
 * registry proxy there is nothing to prepare. `idle()` resolves when the queue is empty (tests).
 */
export function startDeltaPrecompute(ctx: ControlPlaneContext): { stop(): void; idle(): Promise<void> } {
  const proxy = ctx.config.registryProxy;
  if (!proxy) return { stop() {}, idle: async () => undefined };
  const abort = new AbortController();
  let chain: Promise<void> = Promise.resolve();
  const off = ctx.events.on('campaign-created', ({ campaignId }) => {
    chain = chain.then(() =>
      prepare(ctx, proxy, campaignId, abort.signal).catch((err: unknown) => {
        if (abort.signal.aborted) return;
        ctx.log.warn({ campaign: campaignId, err: (err as Error).message }, 'layer deltas not prepared for the campaign; devices ask the proxy themselves');
      }),
    );
  });
  return {
    stop() {
      off();
      abort.abort(new Error('control plane closing'));
    },
    idle: () => chain,
  };
}
