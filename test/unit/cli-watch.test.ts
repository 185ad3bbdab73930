import { describe, expect, it } from 'vitest';
import { parseCommand } from '../../cli/args.js';
import { BerthClient } from '../../cli/client.js';
import { campaignCommands } from '../../cli/commands/campaign.js';
import type { Io } from '../../cli/context.js';
import { ApiError } from '../../cli/http.js';
import { campaignView } from '../../protocol/campaigns.js';
import { terminalSafe } from '../../cli/terminal-safe.js';

const STATES = { pending: 0, assigned: 0, succeeded: 0, failed: 0, 'rolled-back': 0, left: 0 };

/** A campaign status as the control plane sends it (checked by the contract), wave 1 of 1 device and wave 2 of 2. */
function status(state: string, w1: Record<string, number>, w2: Record<string, number>, extra: Record<string, unknown> = {}) {
  return campaignView.parse({
    id: 'cmp_00000000-0000-4000-8000-000000000001', name: 'c', manifest: 'demo@2.0.0', selector: '', status: state, statusReason: null, currentWave: 1,
    createdAt: '2026-01-31T11:00:00.000Z', createdBy: 'operator:tok_1', startedAt: '2026-01-31T11:00:01.000Z', finishedAt: null,
    rules: { waves: ['1', '100%'], success: 1, maxFailures: 0, deviceTimeout: '30m', soak: '0', onFailure: 'pause' },
    window: null, soakUntil: null, devices: { ...STATES }, failing: [], bytes: { moved: 0, full: 0, devices: 0, viaDelta: 0 },
    waves: [
      { wave: 1, target: '1', cumulativeDevices: 1, devices: { ...STATES, ...w1 } },
      { wave: 2, target: '100%', cumulativeDevices: 3, devices: { ...STATES, ...w2 } },
    ],
    ...extra,
  });
}

type Answer = { status: number; body: unknown } | Error;

/** Runs `campaign status CAMPAIGN_ID --watch` (a whole id: no list is asked for) against a scripted server; the last answer repeats. */
async function watch(answers: Answer[], tty = false, argv = ['cmp_00000000-0000-4000-8000-000000000001', '--watch']) {
  const out: string[] = [];
  const err: string[] = [];
  let calls = 0;
  const fetchImpl = (async () => {
    const a = answers[Math.min(calls++, answers.length - 1)];
    if (a instanceof Error) throw a;
    return new Response(JSON.stringify(a.body), { status: a.status, headers: { 'content-type': 'application/json' } });
  }) as typeof fetch;
  const io: Io = {
    out: (t) => out.push(t), err: (t) => err.push(t), isTTY: tty, env: {}, readStdin: async () => '', stdinIsTTY: false,
    promptSecret: async () => '', now: () => new Date('2026-01-31T12:00:00Z'), sleep: async () => undefined, home: '/nonexistent',
  };
  const cmd = campaignCommands.status;
  const args = parseCommand(argv, cmd.options, cmd.usage);
  const code = await cmd.run({ io, args, usage: cmd.usage, client: async () => new BerthClient('http://cp.invalid', 'berth_t', fetchImpl) });
  return { code, out, err, calls };
}

const ok = (body: unknown) => ({ status: 200, body });

describe('campaign status --watch', () => {
  it('prints a line per change on a pipe and exits 0 when the campaign completes', async () => {
    const r = await watch([
      ok(status('running', { assigned: 1 }, { pending: 2 })),
      ok(status('running', { assigned: 1 }, { pending: 2 })),
      ok(status('running', { succeeded: 1 }, { assigned: 2 })),
      ok(status('completed', { succeeded: 1 }, { succeeded: 2 })),
    ]);
    expect(r.code).toBe(0);
    expect(r.out.map((l) => l.slice(9))).toEqual([
      'campaign cmp_00000000-0000-4000-8000-000000000001 running: w1 0/1, w2 0/2',
      'campaign cmp_00000000-0000-4000-8000-000000000001 running: w1 1/1, w2 0/2',
      'campaign cmp_00000000-0000-4000-8000-000000000001 completed: w1 1/1, w2 2/2',
    ]);
    expect(r.err).toEqual([]);
  });

  it('exits 1 when the campaign is aborted, naming the failing devices and the reason', async () => {
    const r = await watch([ok(status('aborted', { failed: 1 }, { pending: 2 }, { statusReason: 'wave 1: 1 of 1 devices failed', failing: [{ deviceId: 'dev_3', serial: 'gw-3', wave: 1, state: 'failed', error: 'app unhealthy\nlog line', at: null }] }))]);
    expect(r.code).toBe(1);
    expect(r.out.slice(1)).toEqual(['  failing gw-3 (wave 1): app unhealthy\n      log line']);
    expect(r.err).toEqual(['campaign cmp_00000000-0000-4000-8000-000000000001 ended aborted: wave 1: 1 of 1 devices failed']);
  });

  it('shows timed-out devices apart from failed ones, as failures of their wave; an answer without the count reads 0', async () => {
    expect(status('running', { assigned: 1 }, { pending: 2 }).waves[0].devices['timed-out']).toBe(0);
    const paused = ok(status('paused', { 'timed-out': 1 }, { pending: 2 }, { statusReason: 'failure rule' }));
    const r = await watch([paused]);
    expect(r.out[0].slice(9)).toBe('campaign cmp_00000000-0000-4000-8000-000000000001 paused: w1 0/1 (1 failed), w2 0/2');
    const once = await watch([paused], false, ['cmp_00000000-0000-4000-8000-000000000001']);
    expect(once.code).toBe(0);
    expect(once.out.join('\n')).toMatch(/wave 1 .*timed-out 1/);
  });

  it('exits 3 when the campaign pauses, saying how to go on', async () => {
    const r = await watch([ok(status('paused', { failed: 1 }, { pending: 2 }, { statusReason: 'failure rule' }))]);
    expect(r.code).toBe(3);
    expect(r.err[0]).toMatch(/^campaign cmp_00000000-0000-4000-8000-000000000001 is paused: failure rule; look, then `berth campaigns resume cmp_00000000-0000-4000-8000-000000000001`/);
  });

  it('waits out a control plane that cannot be reached or answers 503, then carries on', async () => {
    const r = await watch([
      ok(status('running', { assigned: 1 }, { pending: 2 })),
      new TypeError('fetch failed'),
      { status: 503, body: { error: { code: 'unavailable', message: 'restarting' } } },
      ok(status('completed', { succeeded: 1 }, { succeeded: 2 })),
    ]);
    expect(r.code).toBe(0);
    expect(r.err).toHaveLength(2);
    expect(r.err[0]).toMatch(/cannot reach the control plane.*; retrying\)$/);
    expect(r.err[1]).toMatch(/restarting \[503 unavailable\]; retrying\)$/);
  });

  it('stops at once on a refusal (unknown campaign)', async () => {
    await expect(watch([{ status: 404, body: { error: { code: 'unknown-campaign', message: 'no campaign cmp_00000000-0000-4000-8000-000000000001' } } }])).rejects.toBeInstanceOf(ApiError);
  });

  it('redraws the block in place on a terminal, only when it changed', async () => {
    const r = await watch([
      ok(status('running', { assigned: 1 }, { pending: 2 })),
      ok(status('running', { assigned: 1 }, { pending: 2 })),
      ok(status('completed', { succeeded: 1 }, { succeeded: 2 })),
    ], true);
    expect(r.code).toBe(0);
    expect(r.out).toHaveLength(2);
    expect(r.out[0].startsWith('campaign cmp_00000000-0000-4000-8000-000000000001')).toBe(true);
    // Three lines drawn (header + two waves): the redraw moves up three and clears (the CLI's own escapes become real at output).
    expect(terminalSafe(r.out[1]).startsWith('\x1b[3A\r\x1b[J')).toBe(true);
    expect(r.out[1]).toContain('completed');
  });
});
