import { CronTime } from 'cron';
import { z } from 'zod';
import { parseSelector, SelectorError, formatSelector } from '../selector.js';

/**
 * What a release manager asks for when creating a campaign, validated and normalized: durations in
 * milliseconds, waves as typed targets, the selector in canonical form. Everything downstream (the
 * planner, the status) works on CampaignSpec, never on the raw request.
 */

/** A wave's cumulative target: an absolute number of devices, or a share of the matching fleet. */
export type WaveTarget = { kind: 'count'; count: number } | { kind: 'percent'; percent: number };

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

const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `10m`, `1.5h`, `2d`, `250ms`, or `0`. */
export function parseDuration(text: string, field: string): number {
  if (text === '0') return 0;
  const m = DURATION_RE.exec(text.trim());
  if (!m) throw new CampaignSpecError(field, `'${text}' is not a duration (e.g. 90s, 10m, 1h, 2d)`);
  return Math.round(Number(m[1]) * UNIT_MS[m[2]]);
}

export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms > 0 && ms % size === 0) return `${ms / size}${unit}`;
  }
  return ms === 0 ? '0' : `${ms}ms`;
}

const WAVE_RE = /^(\d+)(%?)$/;

export function parseWaves(waves: string[], field = 'waves'): WaveTarget[] {
  if (waves.length === 0) throw new CampaignSpecError(field, 'at least one wave is required');
  if (waves.length > 100) throw new CampaignSpecError(field, 'at most 100 waves');
  const targets: WaveTarget[] = [];
  waves.forEach((raw, i) => {
    const m = WAVE_RE.exec(String(raw).trim());
    if (!m) throw new CampaignSpecError(`${field}[${i}]`, `'${raw}' is neither a device count (e.g. 5) nor a percentage (e.g. 10%)`);
    const n = Number(m[1]);
    if (m[2] === '%') {
      if (n < 1 || n > 100) throw new CampaignSpecError(`${field}[${i}]`, `percentage ${n}% is outside 1%..100%`);
      targets.push({ kind: 'percent', percent: n });
    } else {
      if (n < 1) throw new CampaignSpecError(`${field}[${i}]`, 'a device count must be at least 1');
      targets.push({ kind: 'count', count: n });
    }
  });
  // Cumulative targets must grow when both are of the same kind; mixed kinds depend on the fleet size.
  for (let i = 1; i < targets.length; i++) {
    const a = targets[i - 1];
    const b = targets[i];
    const shrinks =
      (a.kind === 'count' && b.kind === 'count' && b.count <= a.count) ||
      (a.kind === 'percent' && b.kind === 'percent' && b.percent <= a.percent);
    if (shrinks) throw new CampaignSpecError(`${field}[${i}]`, 'waves are cumulative targets and must grow');
  }
  return targets;
}

export function formatWave(w: WaveTarget): string {
  return w.kind === 'count' ? String(w.count) : `${w.percent}%`;
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

const RELEASE_RE = /^[a-z0-9][a-z0-9._-]{0,127}@[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;

export const createCampaignBody = z.strictObject({
  name: z.string().min(1).max(128).optional(),
  manifest: z.string().regex(RELEASE_RE, 'expected name@version'),
  selector: z.string().max(4096).default(''),
  waves: z.array(z.string().max(16)).default(['100%']),
  success: z.number().gt(0).lte(1).default(1),
  maxFailures: z.number().gte(0).lt(1).default(0),
  deviceTimeout: z.string().default('30m'),
  soak: z.string().default('0'),
  window: z
    .strictObject({
      cron: z.string().min(1).max(256),
      duration: z.string(),
      tz: z.string().min(1).max(64).default('UTC'),
    })
    .optional(),
  onFailure: z.enum(['pause', 'rollback']).default('pause'),
  supersede: z.boolean().default(false),
  start: z.boolean().default(false),
});
export type CreateCampaignBody = z.infer<typeof createCampaignBody>;

/** Turns a schema-valid request into a spec, or throws CampaignSpecError naming the field. */
export function specFromBody(body: CreateCampaignBody): CampaignSpec {
  let selector: string;
  try {
    selector = formatSelector(parseSelector(body.selector));
  } catch (err) {
    if (err instanceof SelectorError) throw new CampaignSpecError('selector', err.message);
    throw err;
  }
  const deviceTimeoutMs = parseDuration(body.deviceTimeout, 'deviceTimeout');
  if (deviceTimeoutMs < 1000) throw new CampaignSpecError('deviceTimeout', 'must be at least 1s');
  let window: MaintenanceWindow | null = null;
  if (body.window) {
    validateWindow(body.window.cron, body.window.tz);
    const durationMs = parseDuration(body.window.duration, 'window.duration');
    if (durationMs < 1000) throw new CampaignSpecError('window.duration', 'must be at least 1s');
    window = { cron: body.window.cron, durationMs, tz: body.window.tz };
  }
  return {
    release: body.manifest,
    selector,
    waves: parseWaves(body.waves),
    success: body.success,
    maxFailures: body.maxFailures,
    deviceTimeoutMs,
    soakMs: parseDuration(body.soak, 'soak'),
    window,
    onFailure: body.onFailure,
  };
}
