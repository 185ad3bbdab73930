import { describe, expect, it } from 'vitest';
import { run, usage } from '../../cli/index.js';
import type { Io } from '../../cli/context.js';

function io(env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const value: Io = {
    out: (t) => out.push(t), err: (t) => err.push(t), isTTY: false, env, readStdin: async () => '', stdinIsTTY: false,
    promptSecret: async () => '', now: () => new Date(), sleep: async () => undefined, home: '/nonexistent',
  };
  return { value, out, err };
}

describe('berth verb dispatch', () => {
  it('lists every verb and subcommand in the usage', () => {
    const text = usage();
    for (const v of ['login', 'apply', 'manifests diff', 'devices import', 'devices revoke', 'campaign create', 'campaign status', 'tokens create', 'audit']) expect(text).toContain(`  ${v}`);
  });
  it('answers a missing subcommand with its usage on stderr (exit 2), --help on stdout (exit 0)', async () => {
    const a = io();
    expect(await run(['campaign'], a.value)).toBe(2);
    expect(a.err[0]).toMatch(/^usage: berth campaign <create\|start\|pause\|resume\|abort\|status\|list>/);
    const b = io();
    expect(await run(['devices', '--help'], b.value)).toBe(0);
    expect(b.out[0]).toMatch(/^usage: berth devices </);
    const c = io();
    expect(await run(['campaign', 'create', '--help'], c.value)).toBe(0);
    expect(c.out[0]).toMatch(/^create a rollout/);
    // The defaults shown are the server's (protocol/campaign-spec.ts), not example values.
    expect(c.out[0]).toMatch(/--success PCT .*\(default 100%\)/);
    expect(c.out[0]).toMatch(/--max-failures PCT .*\(default 0%\)/);
    expect(c.out[0]).toMatch(/--device-timeout DUR .*\(default 30m\)/);
    expect(c.out[0]).toMatch(/--soak DUR .*\(default 0s\)/);
  });
  it('refuses unknown verbs and subcommands', async () => {
    const a = io();
    expect(await run(['deploy'], a.value)).toBe(2);
    expect(a.err[0]).toMatch(/^berth: unknown verb "deploy"/);
    const b = io();
    expect(await run(['devices', 'nuke'], b.value)).toBe(2);
    expect(b.err).toEqual(['berth: devices has no subcommand "nuke"; use one of: import, list, show, label, revoke']);
  });
  it('checks arguments before it needs a server, and says what is missing', async () => {
    const a = io();
    expect(await run(['campaign', 'create', '--manifest', 'demo@1.0.0', '--selector', '', '--waves', '50%,10%'], a.value)).toBe(2);
    expect(a.err).toEqual([
      'berth: --waves: wave 2 (10%) does not grow over wave 1 (50%): waves are cumulative targets, like 1,10%,100%',
      '  the accepted forms of durations, percentages, waves and releases are in cli/README.md ("Values")',
    ]);
    const b = io();
    expect(await run(['devices', 'list'], b.value)).toBe(1);
    expect(b.err).toEqual(['berth: no control plane configured', '  pass --server URL, set BERTH_SERVER, or run `berth login --server URL` (token on stdin)']);
  });
  it('prints the hint about --token only when the flag is used', async () => {
    const a = io();
    await run(['devices', 'list', '--token', 'berth_x'], a.value);
    expect(a.err[0]).toMatch(/^hint: --token is visible in shell history/);
    const b = io({ BERTH_TOKEN: 'berth_x' });
    await run(['devices', 'list'], b.value);
    expect(b.err.some((l) => l.startsWith('hint:'))).toBe(false);
  });
});
