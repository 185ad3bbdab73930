import { describe, expect, it } from 'vitest';
import { CAMPAIGN_DEFAULTS, createCampaignBody } from '../../protocol/campaign-spec.js';
import { CampaignSpecError, specFromBody } from '../../control-plane/campaigns/spec.js';
import { classifyReport, transition } from '../../control-plane/campaigns/outcome.js';
import type { ServiceReport } from '../../protocol/device.js';

function specError(fn: () => unknown): CampaignSpecError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CampaignSpecError) return err;
    throw err;
  }
  throw new Error('expected a CampaignSpecError');
}

describe('campaign spec', () => {
  const base = { manifest: 'gateway@2.0.0' };
  const spec = (body: Record<string, unknown>) => specFromBody(createCampaignBody.parse({ ...base, ...body }));

  it('reads compound durations in every duration field', () => {
    const s = spec({ soak: '1h30m', deviceTimeout: '1h30m', window: { cron: '0 2 * * *', duration: '1h30m' } });
    expect([s.soakMs, s.deviceTimeoutMs, s.window?.durationMs]).toEqual([5_400_000, 5_400_000, 5_400_000]);
    expect(spec({ soak: '0' }).soakMs).toBe(0);
  });

  it('applies the defaults the CLI shows', () => {
    expect(spec({})).toEqual({
      release: 'gateway@2.0.0',
      selector: CAMPAIGN_DEFAULTS.selector,
      waves: [{ kind: 'percent', percent: 100 }],
      success: CAMPAIGN_DEFAULTS.success,
      maxFailures: CAMPAIGN_DEFAULTS.maxFailures,
      deviceTimeoutMs: 30 * 60_000,
      soakMs: 0,
      window: null,
      onFailure: CAMPAIGN_DEFAULTS.onFailure,
    });
  });

  it('parses waves, 12.5% included, and names the bad one by index', () => {
    expect(spec({ waves: ['1', '12.5%', '100%'] }).waves).toEqual([
      { kind: 'count', count: 1 },
      { kind: 'percent', percent: 12.5 },
      { kind: 'percent', percent: 100 },
    ]);
    expect(specError(() => spec({ waves: ['1', 'ten'] })).field).toBe('waves[1]');
    expect(specError(() => spec({ waves: ['0'] })).field).toBe('waves[0]');
    expect(specError(() => spec({ waves: ['150%'] })).field).toBe('waves[0]');
    const shrinks = specError(() => spec({ waves: ['50%', '10%'] }));
    expect([shrinks.field, shrinks.message]).toEqual(['waves[1]', 'waves[1]: wave 2 (10%) does not grow over wave 1 (50%): waves are cumulative targets, like 1,10%,100%']);
    expect(specError(() => spec({ waves: [] })).field).toBe('waves');
  });

  it('refuses bad durations and shares in the schema, naming the field and the rule', () => {
    const issue = (body: Record<string, unknown>) => {
      const res = createCampaignBody.safeParse({ ...base, ...body });
      return res.success ? undefined : [res.error.issues[0].path.join('.'), res.error.issues[0].message];
    };
    expect(issue({ deviceTimeout: '10 minutes' })).toEqual(['deviceTimeout', 'expected a duration like 30s, 1m30s or 500ms, got "10 minutes": the units are w, d, h, m, s and ms']);
    expect(issue({ soak: '10' })).toEqual(['soak', 'expected a duration like 30s, 1m30s or 500ms, got "10": a number needs a unit (10s? 10m?)']);
    expect(issue({ deviceTimeout: '500ms' })).toEqual(['deviceTimeout', 'must be at least 1s']);
    expect(issue({ window: { cron: '0 2 * * *', duration: 'soon' } })?.[0]).toBe('window.duration');
    expect(issue({ success: 0 })).toEqual(['success', 'must be above 0%: at 0% any wave would pass']);
    expect(issue({ maxFailures: 1 })?.[1]).toMatch(/never trip/);
    expect(issue({ manifest: 'gateway' })).toEqual(['manifest', 'expected a release like weather-station@1.4.0, got "gateway": the @version is missing']);
  });

  it('normalizes a whole request', () => {
    const body = createCampaignBody.parse({
      manifest: 'gateway@2.0.0',
      selector: ' site = berlin ',
      waves: ['1', '100%'],
      deviceTimeout: '10m',
      soak: '5m',
      window: { cron: '0 2 * * *', duration: '2h', tz: 'Europe/Berlin' },
      onFailure: 'rollback',
    });
    expect(specFromBody(body)).toEqual({
      release: 'gateway@2.0.0',
      selector: 'site=berlin',
      waves: [{ kind: 'count', count: 1 }, { kind: 'percent', percent: 100 }],
      success: 1,
      maxFailures: 0,
      deviceTimeoutMs: 600_000,
      soakMs: 300_000,
      window: { cron: '0 2 * * *', durationMs: 7_200_000, tz: 'Europe/Berlin' },
      onFailure: 'rollback',
    });
  });

  it('names the field of a bad selector, cron expression or time zone', () => {
    expect(specError(() => specFromBody(createCampaignBody.parse({ ...base, selector: 'site=' + '(' }))).field).toBe('selector');
    const badCron = createCampaignBody.parse({ ...base, window: { cron: '61 * * * *', duration: '1h' } });
    expect(specError(() => specFromBody(badCron)).field).toBe('window.cron');
    const badTz = createCampaignBody.parse({ ...base, window: { cron: '0 2 * * *', duration: '1h', tz: 'Mars/Olympus' } });
    expect(specError(() => specFromBody(badTz)).field).toBe('window.tz');
  });

  it('refuses unknown fields and out-of-range shares in the request schema', () => {
    expect(createCampaignBody.safeParse({ manifest: 'gateway@2.0.0', wave: ['1'] }).success).toBe(false);
    expect(createCampaignBody.safeParse({ manifest: 'gateway@2.0.0', success: 1.5 }).success).toBe(false);
    expect(createCampaignBody.safeParse({ manifest: 'gateway', waves: ['1'] }).success).toBe(false);
  });
});

describe('classifyReport', () => {
  const svc = (s: Partial<ServiceReport>): ServiceReport => ({ image: 'x', status: 'running', health: 'healthy', restarts: 0, ...s });
  const assigned = { sequence: 7, release: 'gateway@2.0.0' };
  const report = (r: Partial<Parameters<typeof classifyReport>[0]>) => ({
    desiredSequence: 7,
    running: 'gateway@2.0.0',
    phase: 'running' as const,
    services: { web: svc({}), job: svc({ health: 'none' }) },
    ...r,
  });

  it('counts running the release with healthy services as success', () => {
    expect(classifyReport(report({}), assigned)).toEqual({ kind: 'succeeded' });
  });

  it('is still in flight while unhealthy, downloading, on another sequence or release', () => {
    expect(classifyReport(report({ services: { web: svc({ health: 'starting' }) } }), assigned).kind).toBe('in-flight');
    expect(classifyReport(report({ services: { web: svc({ status: 'restarting', health: 'none' }) } }), assigned).kind).toBe('in-flight');
    expect(classifyReport(report({ phase: 'downloading' }), assigned).kind).toBe('in-flight');
    expect(classifyReport(report({ desiredSequence: 6 }), assigned).kind).toBe('in-flight');
    expect(classifyReport(report({ running: 'gateway@1.0.0' }), assigned).kind).toBe('in-flight');
  });

  it('counts failed and rolled-back as failure, with the device error', () => {
    expect(classifyReport(report({ phase: 'failed', error: 'disk full' }), assigned)).toEqual({ kind: 'failed', error: 'disk full' });
    expect(classifyReport(report({ phase: 'rolled-back', running: 'gateway@1.0.0' }), assigned)).toEqual({ kind: 'failed', error: 'device reported rolled-back' });
    expect(classifyReport(report({ phase: 'failed', desiredSequence: 6 }), assigned).kind).toBe('in-flight');
  });
});

describe('transition', () => {
  it('allows the operator actions the lifecycle allows, and nothing else', () => {
    expect(transition('draft', 'start')).toBe('running');
    expect(transition('running', 'pause')).toBe('paused');
    expect(transition('paused', 'resume')).toBe('running');
    expect(transition('running', 'abort')).toBe('aborted');
    expect(transition('draft', 'abort')).toBe('aborted');
    expect(transition('running', 'start')).toBeNull();
    expect(transition('running', 'resume')).toBeNull();
    expect(transition('completed', 'abort')).toBeNull();
    expect(transition('failed', 'resume')).toBeNull();
  });
});
