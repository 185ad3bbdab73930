import { describe, expect, it } from 'vitest';
import { CampaignSpecError, createCampaignBody, formatDuration, parseDuration, parseWaves, specFromBody } from '../../control-plane/campaigns/spec.js';
import { classifyReport, transition } from '../../control-plane/campaigns/outcome.js';
import type { ServiceReport } from '../../protocol/protocol.js';

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
  it('parses durations and prints them back', () => {
    expect(parseDuration('10m', 'soak')).toBe(600_000);
    expect(parseDuration('1.5h', 'soak')).toBe(5_400_000);
    expect(parseDuration('250ms', 'soak')).toBe(250);
    expect(parseDuration('0', 'soak')).toBe(0);
    expect(formatDuration(600_000)).toBe('10m');
    expect(formatDuration(90_000)).toBe('90s');
    expect(specError(() => parseDuration('10 minutes', 'deviceTimeout')).field).toBe('deviceTimeout');
  });

  it('parses waves and names the bad one', () => {
    expect(parseWaves(['1', '10%', '100%'])).toEqual([
      { kind: 'count', count: 1 },
      { kind: 'percent', percent: 10 },
      { kind: 'percent', percent: 100 },
    ]);
    expect(specError(() => parseWaves(['1', 'ten'])).field).toBe('waves[1]');
    expect(specError(() => parseWaves(['0'])).field).toBe('waves[0]');
    expect(specError(() => parseWaves(['150%'])).field).toBe('waves[0]');
    expect(specError(() => parseWaves(['50%', '10%'])).field).toBe('waves[1]');
    expect(specError(() => parseWaves([])).field).toBe('waves');
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
    const base = { manifest: 'gateway@2.0.0' };
    expect(specError(() => specFromBody(createCampaignBody.parse({ ...base, selector: 'site=' + '(' }))).field).toBe('selector');
    const badCron = createCampaignBody.parse({ ...base, window: { cron: '61 * * * *', duration: '1h' } });
    expect(specError(() => specFromBody(badCron)).field).toBe('window.cron');
    const badTz = createCampaignBody.parse({ ...base, window: { cron: '0 2 * * *', duration: '1h', tz: 'Mars/Olympus' } });
    expect(specError(() => specFromBody(badTz)).field).toBe('window.tz');
    const badDuration = createCampaignBody.parse({ ...base, window: { cron: '0 2 * * *', duration: 'soon' } });
    expect(specError(() => specFromBody(badDuration)).field).toBe('window.duration');
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
