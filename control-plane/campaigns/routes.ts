import { Hono } from 'hono';
import { requireRole } from '../operators/auth.js';
import type { ControlPlaneContext } from '../context.js';
import { HttpError, jsonBody, queryOf, type AppEnv } from '../http.js';
import type { OperatorAction } from './outcome.js';
import { campaignStatus, campaignSummary, createCampaign, operatorAction } from './service.js';
import { createCampaignBody } from '../../protocol/campaign-spec.js';
import { campaignListQuery } from '../../protocol/campaigns.js';
import { CampaignSpecError, specFromBody, type CampaignSpec } from './spec.js';
import { listCampaigns, loadCampaign } from './store.js';
import { releaseSpec } from '../policy/service.js';
import { rolloutRefusal } from '../vars/rollout.js';
import { reconfiguredDevices } from '../vars/reconfigure.js';
import { parseSelector } from '../selector.js';

export function campaignRoutes(ctx: ControlPlaneContext) {
  const app = new Hono<AppEnv>();

  app.post('/', requireRole('release-manager'), async (c) => {
    const body = await jsonBody(c, createCampaignBody);
    let spec: CampaignSpec;
    try {
      spec = specFromBody(body);
    } catch (err) {
      if (err instanceof CampaignSpecError) throw new HttpError(400, 'invalid-body', err.message, err.field);
      throw err;
    }
    // Privileges and variables first: no device is taken from another campaign for a rollout that cannot run.
    const manifest = await releaseSpec(ctx.db, spec.release);
    const refused = manifest ? await rolloutRefusal(c, ctx.db, spec.release, manifest, spec.selector) : null;
    if (refused) return refused;
    let onlyDevices: string[] | undefined;
    if (body.reconfigure && manifest) {
      const r = await reconfiguredDevices(ctx, ctx.db, spec.release, manifest, parseSelector(spec.selector));
      if (!r.affected.length) {
        throw new HttpError(409, 'nothing-to-reconfigure', `no device matching the selector runs ${spec.release} with values that changed (${r.unchanged} unchanged, ${r.otherRelease} on another release)`, 'manifest');
      }
      onlyDevices = r.affected;
    }
    const out = await createCampaign(ctx, c.var.actor, { name: body.name, spec, supersede: body.supersede, start: body.start, onlyDevices });
    switch (out.kind) {
      case 'unknown-manifest':
        throw new HttpError(404, 'unknown-manifest', `manifest ${out.release} is not published`, 'manifest');
      case 'conflict':
        return c.json(
          {
            error: { code: 'campaign-conflict', message: `${out.total} matching device(s) belong to other active campaigns; send supersede: true to move them to this one`, field: 'selector' },
            total: out.total,
            conflicts: out.conflicts,
          },
          409,
        );
      case 'created': {
        const campaign = await loadCampaign(ctx.db, out.id);
        if (!campaign) throw new HttpError(500, 'internal', 'campaign vanished after creation');
        return c.json(await campaignStatus(ctx, campaign, ctx.now().getTime()), 201);
      }
    }
  });

  app.get('/', requireRole('viewer'), async (c) => {
    const q = queryOf(c, campaignListQuery);
    const rows = await listCampaigns(ctx.db, q.status ?? null, q.limit);
    return c.json({ campaigns: rows.map(campaignSummary) });
  });

  app.get('/:id', requireRole('viewer'), async (c) => {
    const campaign = await loadCampaign(ctx.db, c.req.param('id'));
    if (!campaign) throw new HttpError(404, 'unknown-campaign', `no campaign ${c.req.param('id')}`);
    return c.json(await campaignStatus(ctx, campaign, ctx.now().getTime()));
  });

  for (const action of ['start', 'pause', 'resume', 'abort'] as const satisfies readonly OperatorAction[]) {
    app.post(`/:id/${action}`, requireRole('release-manager'), async (c) => {
      const id = c.req.param('id');
      const out = await operatorAction(ctx, c.var.actor, id, action);
      if (out.kind === 'not-found') throw new HttpError(404, 'unknown-campaign', `no campaign ${id}`);
      if (out.kind === 'refused') throw new HttpError(409, 'campaign-state', `cannot ${action} a campaign that is ${out.status}`);
      return c.json(await campaignStatus(ctx, out.campaign, ctx.now().getTime()));
    });
  }

  return app;
}
