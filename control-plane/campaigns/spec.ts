import { CronTime } from 'cron';
import { GrammarError, parseWaves, type WaveTarget } from '../../common/grammar.js';
import type { CreateCampaignBody } from '../../protocol/campaign-spec.js';
import { parseSelector, SelectorError, formatSelector } from '../selector.js';

/**
 * What a release manager asks for when creating a campaign, validated and normalized: durations in
 * milliseconds, waves as typed targets, the selector in canonical form. Everything downstream (the
 * planner, the status) works on CampaignSpec, never on the raw request.
 */

export interface MaintenanceWindow {
  cron: string;
  durationMs: number;
  tz: string;
}

export type FailureAction = 'pause' | 'rollback';

export interface CampaignSpec {
  /** name@version of the release the campaign rolls out. */
  release: string;
  selector: string;
  waves: WaveTarget[];
  /** Share (0..1] of a wave that must run the release healthy for the wave to pass. */
  success: number;
  /** Share [0..1) of a wave failed above which the failure action runs. */
  maxFailures: number;
  deviceTimeoutMs: number;
  soakMs: number;
  window: MaintenanceWindow | null;
  onFailure: FailureAction;
}

export class CampaignSpecError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'CampaignSpecError';
  }
}

export function validateWindow(cron: string, tz: string, field = 'window'): void {
  const check = CronTime.validateCronExpression(cron);
  if (!check.valid) throw new CampaignSpecError(`${field}.cron`, `'${cron}' is not a cron expression: ${check.error?.message ?? 'invalid'}`);
  try {
    new CronTime(cron, tz);
  } catch (err) {
    throw new CampaignSpecError(`${field}.tz`, `'${tz}' is not a time zone: ${(err as Error).message}`);
  }
}

/** Turns a schema-valid request into a spec, or throws CampaignSpecError naming the field. */
export function specFromBody(body: CreateCampaignBody): CampaignSpec {
  let selector: string;
  try {
    selector = formatSelector(parseSelector(body.selector));
  } catch (err) {
    if (err instanceof SelectorError) throw new CampaignSpecError('selector', err.message);
    throw err;
  }
  let window: MaintenanceWindow | null = null;
  if (body.window) {
    validateWindow(body.window.cron, body.window.tz);
    window = { cron: body.window.cron, durationMs: body.window.duration, tz: body.window.tz };
  }
  return {
    release: body.manifest,
    selector,
    waves: wavesOf(body.waves),
    success: body.success,
    maxFailures: body.maxFailures,
    deviceTimeoutMs: body.deviceTimeout,
    soakMs: body.soak,
    window,
    onFailure: body.onFailure,
  };
}

/** The waves of a request; a bad one is named by its index (`waves[1]`), as the API always has. */
function wavesOf(waves: string[]): WaveTarget[] {
  try {
    return parseWaves(waves);
  } catch (err) {
    if (err instanceof GrammarError) throw new CampaignSpecError(err.index === undefined ? 'waves' : `waves[${err.index}]`, err.detail);
    throw err;
  }
}
