import { describe, expect, it } from 'vitest';
import { parseCommand, parseDuration, parseLabelEdits, parseManifestRef, parsePercent, parseSince, parseWaves, formatWaves } from '../../cli/args.js';
import { campaignRequest } from '../../cli/commands/campaign.js';
import { CliError } from '../../cli/errors.js';

const CREATE_OPTIONS = {
  manifest: { type: 'string' as const },
  selector: { type: 'string' as const, short: 'l' },
  waves: { type: 'string' as const },
  success: { type: 'string' as const },
  'max-failures': { type: 'string' as const },
  'device-timeout': { type: 'string' as const },
  soak: { type: 'string' as const },
  window: { type: 'string' as const },
  'window-duration': { type: 'string' as const },
  tz: { type: 'string' as const },
  'on-failure': { type: 'string' as const },
  supersede: { type: 'boolean' as const },
  start: { type: 'boolean' as const },
  name: { type: 'string' as const },
};
const create = (argv: string[]) => campaignRequest(parseCommand(argv, CREATE_OPTIONS, 'usage'));

describe('durations', () => {
  it('reads single and compound units', () => {
    expect(parseDuration('90s', '--x')).toBe(90_000);
    expect(parseDuration('10m', '--x')).toBe(600_000);
    expect(parseDuration('1h30m', '--x')).toBe(5_400_000);
    expect(parseDuration('30d', '--x')).toBe(30 * 86_400_000);
    expect(parseDuration('250ms', '--x')).toBe(250);
  });
  it('refuses bare numbers and junk, naming the flag', () => {
    expect(() => parseDuration('10', '--soak')).toThrow(/--soak "10" is not a duration/);
    expect(() => parseDuration('10 minutes', '--soak')).toThrow(CliError);
    expect(() => parseDuration('', '--soak')).toThrow(CliError);
  });
});

describe('percentages and waves', () => {
  it('reads percentages with or without %', () => {
    expect(parsePercent('95%', '--success')).toBe(95);
    expect(parsePercent('12.5', '--success')).toBe(12.5);
    expect(() => parsePercent('101%', '--success')).toThrow(/not a percentage/);
    expect(() => parsePercent('-1', '--success')).toThrow(CliError);
  });
  it('parses counts and cumulative percentages', () => {
    expect(parseWaves('1,10%,100%')).toEqual([{ count: 1 }, { percent: 10 }, { percent: 100 }]);
    expect(formatWaves(parseWaves(' 2 , 50% ,100%'))).toBe('2,50%,100%');
  });
  it('refuses empty, zero, shrinking and malformed waves', () => {
    expect(() => parseWaves('1,,100%')).toThrow(/empty wave/);
    expect(() => parseWaves('0,100%')).toThrow(/wave 1/);
    expect(() => parseWaves('50%,10%')).toThrow(/wave 2 \(10%\) does not grow/);
    expect(() => parseWaves('5,5')).toThrow(/does not grow/);
    expect(() => parseWaves('10x')).toThrow(/wave 1/);
    expect(() => parseWaves('150%')).toThrow(/wave 1/);
  });
});

describe('labels and references', () => {
  it('sets with k=v and removes with k-', () => {
    expect(parseLabelEdits(['site=berlin', 'tier-', 'example.com/rack=r1', 'empty='])).toEqual({ set: { site: 'berlin', 'example.com/rack': 'r1', empty: '' }, remove: ['tier'] });
  });
  it('refuses bad keys, bad values, both set and removed, and nothing at all', () => {
    expect(() => parseLabelEdits(['=x'])).toThrow(/neither k=v nor k-/);
    expect(() => parseLabelEdits(['site=a b'])).toThrow(/label value/);
    expect(() => parseLabelEdits(['bad key=x'])).toThrow(/label key/);
    expect(() => parseLabelEdits(['a=1', 'a-'])).toThrow(/both set and removed/);
    expect(() => parseLabelEdits([])).toThrow(/no labels/);
  });
  it('splits NAME@VERSION and requires both', () => {
    expect(parseManifestRef('demo@1.2.0')).toEqual({ name: 'demo', version: '1.2.0' });
    expect(() => parseManifestRef('demo')).toThrow(/NAME@VERSION/);
    expect(() => parseManifestRef('@1')).toThrow(/NAME@VERSION/);
  });
  it('reads --since as a date or a duration back from now', () => {
    const now = new Date('2026-01-31T12:00:00Z');
    expect(parseSince('2h', now)).toBe('2026-01-31T10:00:00.000Z');
    expect(parseSince('2026-01-30T00:00:00Z', now)).toBe('2026-01-30T00:00:00.000Z');
    expect(() => parseSince('2026-13-45', now)).toThrow(/not a valid date/);
  });
});

describe('command line', () => {
  it('accepts global options anywhere and short forms', () => {
    const p = parseCommand(['ID', '-o', 'json', '--watch', '--server', 'http://x'], { watch: { type: 'boolean' } }, 'u');
    expect(p.positionals).toEqual(['ID']);
    expect(p.output).toBe('json');
    expect(p.values.watch).toBe(true);
    expect(p.values.server).toBe('http://x');
  });
  it('turns unknown flags and formats into usage errors (exit 2)', () => {
    try {
      parseCommand(['--nope'], {}, 'berth x');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(CliError);
      expect((err as CliError).exitCode).toBe(2);
      expect((err as CliError).hint).toBe('usage: berth x');
    }
    expect(() => parseCommand(['-o', 'yaml'], {}, 'u')).toThrow(/--output "yaml"/);
  });
});

describe('campaign create flags → request', () => {
  it('builds the full request with normalized values', () => {
    const body = create([
      '--manifest', 'demo@2.0.0', '--selector', 'site=berlin', '--waves', '1,10%,100%', '--success', '95%', '--max-failures', '10%',
      '--device-timeout', '1h30m', '--soak', '300s', '--window', '0 2 * * *', '--window-duration', '2h', '--tz', 'Europe/Berlin',
      '--on-failure', 'rollback', '--supersede', '--start',
    ]);
    expect(body).toEqual({
      manifest: 'demo@2.0.0', selector: 'site=berlin', waves: ['1', '10%', '100%'], success: 0.95, maxFailures: 0.1,
      deviceTimeout: '90m', soak: '5m', window: { cron: '0 2 * * *', duration: '2h', tz: 'Europe/Berlin' }, onFailure: 'rollback', supersede: true, start: true,
    });
  });
  it('keeps the defaults to the server when flags are absent', () => {
    expect(create(['--manifest', 'demo@1', '--selector', '', '--waves', '100%'])).toEqual({ manifest: 'demo@1', selector: '', waves: ['100%'] });
  });
  it('refuses incomplete or contradictory flags', () => {
    expect(() => create(['--selector', 'a=b', '--waves', '1'])).toThrow(/--manifest is required/);
    expect(() => create(['--manifest', 'demo@1', '--waves', '1'])).toThrow(/--selector is required/);
    expect(() => create(['--manifest', 'demo', '--selector', '', '--waves', '1'])).toThrow(/NAME@VERSION/);
    expect(() => create(['--manifest', 'demo@1', '--selector', '', '--waves', '1', '--window', '0 2 * * *'])).toThrow(/--window-duration/);
    expect(() => create(['--manifest', 'demo@1', '--selector', '', '--waves', '1', '--tz', 'UTC'])).toThrow(/only make sense with --window/);
    expect(() => create(['--manifest', 'demo@1', '--selector', '', '--waves', '1', '--on-failure', 'retry'])).toThrow(/pause or rollback/);
    expect(() => create(['--manifest', 'demo@1', '--selector', '', '--waves', '1', '--success', '0%'])).toThrow(/would pass any wave/);
    expect(() => create(['--manifest', 'demo@1', '--selector', '', '--waves', '1', '--max-failures', '100%'])).toThrow(/never trip/);
  });
});
