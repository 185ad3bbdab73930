import { z } from 'zod';
import { createCampaignBody } from './campaign-spec.js';
import { errorEnvelope, json, route } from './route.js';
import { rolloutRefusal } from './vars.js';

/** Campaigns: a rollout of one release to the devices a selector picks, in waves. */

export const campaignStatuses = ['draft', 'running', 'paused', 'completed', 'failed', 'aborted'] as const;
/** Where each device of a campaign stands. */
export const campaignDeviceStates = ['pending', 'assigned', 'succeeded', 'failed', 'rolled-back', 'left'] as const;
export const campaignActions = ['start', 'pause', 'resume', 'abort'] as const;
export type CampaignAction = (typeof campaignActions)[number];

const time = z.string().meta({ description: 'ISO 8601' });
/**
 * Devices by state. `timed-out` are the failed devices that sent no successful report within the
 * device timeout, counted apart from (not within) `failed`; it defaults to 0 so answers from control
 * planes older than it still parse.
 */
const stateCounts = z.object({
  ...(Object.fromEntries(campaignDeviceStates.map((s) => [s, z.number().int()])) as Record<(typeof campaignDeviceStates)[number], z.ZodNumber>),
  'timed-out': z.number().int().default(0),
});

export const campaignListQuery = z.object({
  status: z.enum(campaignStatuses).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
});

export const campaignSummary = z.object({
  id: z.string(),
  name: z.string(),
  /** name@version rolled out. */
  manifest: z.string(),
  selector: z.string(),
  status: z.enum(campaignStatuses),
  statusReason: z.string().nullable(),
  /** 1-based wave being rolled out (or soaked after it passed). */
  currentWave: z.number().int(),
  createdAt: time,
  createdBy: z.string(),
  startedAt: time.nullable(),
  finishedAt: time.nullable(),
});

const windowBase = { cron: z.string(), duration: z.string(), tz: z.string() };
export const windowView = z.union([
  z.object({ ...windowBase, open: z.literal(true), closesAt: time.nullable() }),
  z.object({ ...windowBase, open: z.literal(false), opensAt: time.nullable() }),
]);

export const campaignView = campaignSummary.extend({
  rules: z.object({
    waves: z.array(z.string()),
    /** Shares 0..1. */
    success: z.number(),
    maxFailures: z.number(),
    deviceTimeout: z.string(),
    soak: z.string(),
    onFailure: z.enum(['pause', 'rollback']),
  }),
  soakUntil: time.nullable(),
  window: windowView.nullable(),
  /** Devices of the campaign by state, all waves together. */
  devices: stateCounts,
  waves: z.array(z.object({ wave: z.number().int(), target: z.string(), cumulativeDevices: z.number().int(), devices: stateCounts })),
  /**
   * The update's bytes over the devices that reported on their assignment of this campaign: what
   * they moved against what the missing layers weigh in full, and how many took layer deltas.
   */
  bytes: z.object({
    moved: z.number().nonnegative(),
    full: z.number().nonnegative(),
    devices: z.number().int().nonnegative(),
    viaDelta: z.number().int().nonnegative(),
  }),
  failing: z.array(
    z.object({ deviceId: z.string(), serial: z.string(), wave: z.number().int(), state: z.enum(campaignDeviceStates), error: z.string().nullable(), at: time.nullable() }),
  ),
});
export const campaignList = z.object({ campaigns: z.array(campaignSummary) });

export const campaignConflict = errorEnvelope.extend({
  total: z.number().int(),
  /** A sample of the devices other active campaigns hold. */
  conflicts: z.array(z.object({ deviceId: z.string(), serial: z.string(), campaignId: z.string(), campaignName: z.string() })),
});

function actionRoute<const A extends CampaignAction>(action: A) {
  return route({
    method: 'post',
    path: `/v1/campaigns/:id/${action}`,
    summary: `${action[0].toUpperCase()}${action.slice(1)} a campaign${action === 'abort' ? ' and send its devices back to the manifest each ran before' : ''}`,
    auth: 'release-manager',
    responses: { 200: json(campaignView, 'the campaign after the action'), 409: json(errorEnvelope, 'not allowed in the campaign status') },
  });
}

export const campaignRoutes = {
  create: route({
    method: 'post',
    path: '/v1/campaigns',
    summary: 'Create a campaign (a rollout of name@version to the devices a selector picks, in waves); `start: true` starts it',
    auth: 'release-manager',
    body: createCampaignBody,
    responses: {
      201: json(campaignView, 'created'),
      409: json(z.union([campaignConflict, errorEnvelope]), 'devices held by other active campaigns (a sample listed; send supersede: true to take them), or with reconfigure: true, no device whose values changed (nothing-to-reconfigure)'),
      422: json(rolloutRefusal, 'refused up front: privileges no policy grants some target devices, or variables they lack (each group named)'),
    },
  }),
  list: route({
    method: 'get',
    path: '/v1/campaigns',
    summary: 'List campaigns, newest first',
    auth: 'viewer',
    query: campaignListQuery,
    responses: { 200: json(campaignList) },
  }),
  status: route({
    method: 'get',
    path: '/v1/campaigns/:id',
    summary: 'Campaign status: counts per wave and per state, current wave, window, failing devices and their errors',
    auth: 'viewer',
    responses: { 200: json(campaignView) },
  }),
  start: actionRoute('start'),
  pause: actionRoute('pause'),
  resume: actionRoute('resume'),
  abort: actionRoute('abort'),
};
