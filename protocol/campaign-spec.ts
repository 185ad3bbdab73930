import { z } from 'zod';
import { durationMsSchema, releaseRefSchema, WAVE_WHAT } from '../common/grammar.js';

/**
 * The request that creates a campaign (`POST /v1/campaigns`), with its defaults. The control plane
 * validates bodies with it and the CLI checks its flags with the same field schemas and prints
 * these defaults in `berth campaign create --help`, so the two cannot disagree on a rule or a
 * default. Waves travel as strings and are read with parseWaves (common/grammar.ts) on both ends.
 */

/** What the server uses for a field the request leaves out. */
export const CAMPAIGN_DEFAULTS = {
  selector: '',
  waves: ['100%'],
  /** Share of a wave that must run the release healthy: all of it. */
  success: 1,
  /** Share of a wave that may fail before the failure action: none. */
  maxFailures: 0,
  deviceTimeout: '30m',
  soak: '0s',
  tz: 'UTC',
  onFailure: 'pause',
} as const;

/** A device, a window: anything shorter than a second is a typo, not a plan. */
const atLeastOneSecond = z.number().min(1000, 'must be at least 1s');

export const campaignFields = {
  success: z.number().gt(0, 'must be above 0%: at 0% any wave would pass').lte(1, 'must be at most 100% (1 as a share)'),
  maxFailures: z.number().gte(0, 'must be 0% or more').lt(1, 'must be below 100% (1 as a share): at 100% failures would never trip the rule'),
  deviceTimeout: durationMsSchema.pipe(atLeastOneSecond),
  soak: durationMsSchema,
  windowDuration: durationMsSchema.pipe(atLeastOneSecond),
  onFailure: z.enum(['pause', 'rollback']),
};

export const createCampaignBody = z.strictObject({
  name: z.string().min(1).max(128).optional(),
  manifest: releaseRefSchema,
  selector: z.string().max(4096).default(CAMPAIGN_DEFAULTS.selector),
  waves: z
    .array(z.string().max(16))
    .meta({ description: `Cumulative targets, each ${WAVE_WHAT}; a wave grows over the one before it of the same kind` })
    .default([...CAMPAIGN_DEFAULTS.waves]),
  success: campaignFields.success.default(CAMPAIGN_DEFAULTS.success),
  maxFailures: campaignFields.maxFailures.default(CAMPAIGN_DEFAULTS.maxFailures),
  deviceTimeout: campaignFields.deviceTimeout.prefault(CAMPAIGN_DEFAULTS.deviceTimeout),
  soak: campaignFields.soak.prefault(CAMPAIGN_DEFAULTS.soak),
  window: z
    .strictObject({
      cron: z.string().min(1).max(256),
      duration: campaignFields.windowDuration,
      tz: z.string().min(1).max(64).default(CAMPAIGN_DEFAULTS.tz),
    })
    .optional(),
  onFailure: campaignFields.onFailure.default(CAMPAIGN_DEFAULTS.onFailure),
  supersede: z.boolean().default(false),
  start: z.boolean().default(false),
  /** Re-resolve variables: only devices already on this manifest whose values changed join (issue 13). */
  reconfigure: z.boolean().default(false),
});
/** The request as it travels (durations as text). */
export type CreateCampaignRequest = z.input<typeof createCampaignBody>;
/** The request once validated (durations in milliseconds). */
export type CreateCampaignBody = z.output<typeof createCampaignBody>;
