import { describe, expect, it } from 'vitest';
import { GrammarError } from '../../common/grammar.js';
import { parseCommand, parseLabelEdits, parseSince } from '../../cli/args.js';
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
  it('reads --since as a date or a duration back from now', () => {
    const now = new Date('2026-01-31T12:00:00Z');
    expect(parseSince('2h', now)).toBe('2026-01-31T10:00:00.000Z');
    expect(parseSince('2026-01-30T00:00:00Z', now)).toBe('2026-01-30T00:00:00.000Z');
    expect(parseSince('1h30m', now)).toBe('2026-01-31T10:30:00.000Z');
    expect(() => parseSince('2026-13-45', now)).toThrow(/not a valid date/);
    expect(() => parseSince('2', now)).toThrow('--since: expected a duration like 30s, 1m30s or 500ms, got "2": a number needs a unit (2s? 2m?)');
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
    expect(() => parseCommand(['-o', 'xml'], {}, 'u')).toThrow(/--output "xml" is not a known format/);
    expect(() => parseCommand(['-l'], { selector: { type: 'string', short: 'l', value: 'SEL' } }, 'u')).toThrow('--selector needs a value: --selector SEL');
    expect(() => parseCommand(['--wach'], { watch: { type: 'boolean' } }, 'u')).toThrow("unknown option '--wach' (did you mean --watch?)");
    for (const f of ['table', 'wide', 'json', 'yaml', 'name'] as const) expect(parseCommand(['-o', f], {}, 'u').format).toBe(f);
    expect(parseCommand(['-o', 'yaml'], {}, 'u').output).toBe('json');
    expect(parseCommand(['-o', 'wide'], {}, 'u')).toMatchObject({ output: 'table', wide: true });
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
      deviceTimeout: '1h30m', soak: '5m', window: { cron: '0 2 * * *', duration: '2h', tz: 'Europe/Berlin' }, onFailure: 'rollback', supersede: true, start: true,
    });
  });
  it('keeps the defaults to the server when flags are absent', () => {
    expect(create(['--manifest', 'demo@1.0.0', '--selector', '', '--waves', '100%'])).toEqual({ manifest: 'demo@1.0.0', selector: '', waves: ['100%'] });
  });
  it('takes 12.5% waves and shares, and compound durations, as the server does', () => {
    expect(create(['--manifest', 'demo@1.0.0', '--selector', '', '--waves', '1, 12.5%,100%', '--success', '87.5', '--soak', '1h30m'])).toEqual({
      manifest: 'demo@1.0.0', selector: '', waves: ['1', '12.5%', '100%'], success: 0.875, soak: '1h30m',
    });
  });
  it('refuses incomplete or contradictory flags', () => {
    expect(() => create(['--selector', 'a=b', '--waves', '1'])).toThrow(/--manifest is required/);
    expect(() => create(['--manifest', 'demo@1.0.0', '--waves', '1'])).toThrow(/--selector is required/);
    expect(() => create(['--manifest', 'demo', '--selector', '', '--waves', '1'])).toThrow('--manifest: expected a release like weather-station@1.4.0, got "demo": the @version is missing');
    expect(() => create(['--manifest', 'demo@1.0.0', '--selector', '', '--waves', '1', '--window', '0 2 * * *'])).toThrow(/--window-duration/);
    expect(() => create(['--manifest', 'demo@1.0.0', '--selector', '', '--waves', '1', '--tz', 'UTC'])).toThrow(/only make sense with --window/);
    expect(() => create(['--manifest', 'demo@1.0.0', '--selector', '', '--waves', '1', '--on-failure', 'retry'])).toThrow(/pause or rollback/);
  });
  it('refuses bad values in the grammar words, named by the flag', () => {
    const refused = (extra: string[]) => {
      try {
        create(['--manifest', 'demo@1.0.0', '--selector', '', '--waves', '1', ...extra]);
      } catch (err) {
        if (err instanceof GrammarError) return err.message;
        throw err;
      }
      throw new Error('accepted');
    };
    expect(refused(['--success', '0%'])).toBe('--success: must be above 0%: at 0% any wave would pass');
    expect(refused(['--max-failures', '100%'])).toMatch(/^--max-failures: must be below 100% .*never trip/);
    expect(refused(['--success', '101%'])).toBe('--success: expected a percentage like 95% or 12.5%, got "101%": at most 100%');
    expect(refused(['--soak', '10'])).toBe('--soak: expected a duration like 30s, 1m30s or 500ms, got "10": a number needs a unit (10s? 10m?)');
    expect(refused(['--device-timeout', '500ms'])).toBe('--device-timeout: must be at least 1s');
    expect(refused(['--window', '0 2 * * *', '--window-duration', '2 hours'])).toMatch(/^--window-duration: expected a duration/);
    expect(() => create(['--manifest', 'demo@1.0.0', '--selector', '', '--waves', '50%,10%'])).toThrow('--waves: wave 2 (10%) does not grow over wave 1 (50%): waves are cumulative targets, like 1,10%,100%');
  });
});
