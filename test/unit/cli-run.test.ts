import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { run, usage } from '../../cli/index.js';
import { isCommand, VERBS } from '../../cli/commands/index.js';
import { formatDuration, formatShare } from '../../common/grammar.js';
import { createCampaignBody } from '../../protocol/campaign-spec.js';
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
    for (const v of ['login', 'apply', 'manifests diff', 'devices import', 'devices revoke', 'campaigns create', 'campaigns status', 'tokens create', 'audit']) expect(text).toContain(`  ${v}`);
  });
  it('answers a missing subcommand with its usage on stderr (exit 2), --help on stdout (exit 0)', async () => {
    const a = io();
    expect(await run(['campaign'], a.value)).toBe(2);
    expect(a.err[0]).toMatch(/^usage: berth campaigns <create\|start\|pause\|resume\|abort\|status\|list>/);
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
    expect(b.err).toEqual(['berth: devices has no subcommand "nuke"; use one of: import, list, show, label, revoke, assign, rollback, history, rm']);
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
  it('refuses an unknown flag on one line with the usage (exit 2), suggesting a near one', async () => {
    const a = io();
    expect(await run(['devices', 'list', '--limt', '5'], a.value)).toBe(2);
    expect(a.err).toEqual(["berth: unknown option '--limt' (did you mean --limit?)", '  usage: berth devices list [-l SELECTOR] [--limit N] [--after SERIAL] [--output json]']);
    const b = io();
    expect(await run(['campaigns', 'status'], b.value)).toBe(2);
    expect(b.err[0]).toBe('berth: missing ID');
  });
  it('takes global flags before the verb too, and the singular nouns', async () => {
    const a = io();
    expect(await run(['--token', 'berth_x', 'devices', 'list'], a.value)).toBe(1);
    expect(a.err[0]).toMatch(/^hint: --token is visible in shell history/);
    const b = io();
    expect(await run(['-o', 'xml', 'device', 'list'], b.value)).toBe(2);
    expect(b.err[0]).toBe('berth: --output "xml" is not a known format');
    const c = io();
    expect(await run(['campaign', 'nuke'], c.value)).toBe(2);
    expect(c.err[0]).toMatch(/^berth: campaigns has no subcommand "nuke"/);
  });
  it('answers `berth help VERB SUB` as `berth VERB SUB --help`', async () => {
    const a = io();
    const b = io();
    expect(await run(['help', 'devices', 'list'], a.value)).toBe(0);
    expect(await run(['devices', 'list', '--help'], b.value)).toBe(0);
    expect(a.out).toEqual(b.out);
    expect(a.out[0]).toMatch(/\nexamples:\n {2}berth devices list -l site=berlin\n/);
    expect(a.out[0]).toMatch(/\n {2}-l, --selector SEL +only the devices/);
  });
  it('gives every verb examples and every flag a line of help', () => {
    for (const [name, verb] of Object.entries(VERBS)) {
      for (const [sub, c] of isCommand(verb) ? [['', verb] as const] : Object.entries(verb)) {
        expect(c.examples.length, `${name} ${sub}`).toBeGreaterThan(0);
        for (const e of c.examples) expect(e).toMatch(new RegExp(`berth ${[name, sub].filter(Boolean).join(' ')}( |$)`));
        for (const [flag, o] of Object.entries(c.options)) expect(o.description, `${name} ${sub} --${flag}`).toBeTruthy();
      }
    }
  });
  it("shows the campaign rules' defaults as the server's request schema fills them in", async () => {
    const filled = createCampaignBody.parse({ manifest: 'demo@1.0.0' });
    const a = io();
    expect(await run(['campaigns', 'create', '--help'], a.value)).toBe(0);
    expect(a.out[0]).toContain(`(default ${formatShare(filled.success)})`);
    expect(a.out[0]).toMatch(new RegExp(`--soak DUR +wait after a wave passes before the next one starts \\(default ${formatDuration(filled.soak)}\\)`));
    expect(a.out[0]).toMatch(new RegExp(`--on-failure ACTION .*\\(default ${filled.onFailure}\\)`));
  });
  it('documents every verb with its examples in cli/README.md', () => {
    const readme = readFileSync(new URL('../../cli/README.md', import.meta.url), 'utf8');
    for (const [name, verb] of Object.entries(VERBS)) {
      for (const [sub, c] of isCommand(verb) ? [['', verb] as const] : Object.entries(verb)) {
        if (c.hidden) continue;
        expect(readme, `berth ${name} ${sub}`).toContain(`# ${[name, sub].filter(Boolean).join(' ')}: ${c.about}\n${c.examples.join('\n')}\n`);
      }
    }
  });
});
