import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { runService, UsageError, type ServiceIo, type ServiceSpec } from '../../common/service.js';

/** A process stand-in: records output and exits, delivers signals and uncaught errors on demand. */
function fakeIo() {
  const out: string[] = [];
  const err: string[] = [];
  const exits: number[] = [];
  const signalHandlers = new Set<(s: NodeJS.Signals) => void>();
  const uncaughtHandlers = new Set<(e: unknown) => void>();
  const logged: Array<{ level: number; msg: string }> = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void logged.push(JSON.parse(line) as { level: number; msg: string }) });
  const io: ServiceIo = {
    out: (l) => void out.push(l),
    err: (l) => void err.push(l),
    onSignal: (h) => {
      signalHandlers.add(h);
      return () => void signalHandlers.delete(h);
    },
    onUncaught: (h) => {
      uncaughtHandlers.add(h);
      return () => void uncaughtHandlers.delete(h);
    },
    exit: (code) => void exits.push(code),
    log,
  };
  return {
    io, out, err, exits, logged,
    signal: (s: NodeJS.Signals) => [...signalHandlers].forEach((h) => h(s)),
    uncaught: (e: unknown) => [...uncaughtHandlers].forEach((h) => h(e)),
    listeners: () => signalHandlers.size + uncaughtHandlers.size,
  };
}

const tick = () => new Promise((r) => setTimeout(r, 10));

function spec(overrides: Partial<ServiceSpec<{ port: number }>> = {}, events: string[] = []): ServiceSpec<{ port: number }> {
  return {
    name: 'demo-service',
    flags: { port: { type: 'string', about: 'a port' }, verbose: { type: 'boolean', about: 'more' } },
    envPrefix: 'DEMO',
    configure(flags) {
      if (!flags.port) throw new UsageError('--port is required');
      const port = Number(flags.port);
      if (!Number.isInteger(port)) throw new Error(`--port ${JSON.stringify(flags.port)}: expected a number`);
      return { port };
    },
    async start(options) {
      events.push(`start ${options.port}`);
      return { close: async () => void events.push('close') };
    },
    ...overrides,
  };
}

describe('runService', () => {
  it('--help prints the usage with the environment twins and exits 0 without starting', async () => {
    const p = fakeIo();
    const events: string[] = [];
    expect(await runService(['--help'], spec({ helpNotes: 'notes here' }, events), p.io)).toBe(0);
    expect(p.out.join('\n')).toMatch(/usage: berth demo-service \[options\][\s\S]*--port VALUE[\s\S]*BERTH_DEMO_PORT[\s\S]*notes here/);
    expect(events).toEqual([]);
  });

  it('an unknown flag, a missing one and a bad value each exit 2 with one line naming it', async () => {
    for (const [argv, message] of [
      [['--bogus'], /^berth demo-service: Unknown option '--bogus'.* \(see berth demo-service --help\)$/],
      [[], /^berth demo-service: --port is required \(see berth demo-service --help\)$/],
      [['--port', 'x'], /^berth demo-service: --port "x": expected a number/],
    ] as const) {
      const p = fakeIo();
      const events: string[] = [];
      expect(await runService([...argv], spec({}, events), p.io)).toBe(2);
      expect(p.err).toHaveLength(1);
      expect(p.err[0]).toMatch(message);
      expect(events).toEqual([]);
      expect(p.listeners()).toBe(0);
    }
  });

  it('a failure to start exits 1 with the reason logged and on stderr', async () => {
    const p = fakeIo();
    const code = await runService(['--port', '1'], spec({ start: async () => { throw new Error('address in use\nmore detail'); } }), p.io);
    expect(code).toBe(1);
    expect(p.err).toEqual(['berth demo-service: address in use']);
    expect(p.logged.some((l) => l.level === 50 && l.msg === 'demo-service did not start')).toBe(true);
    expect(p.listeners()).toBe(0);
  });

  it('runs until SIGTERM, then closes and exits 0', async () => {
    const p = fakeIo();
    const events: string[] = [];
    const running = runService(['--port', '7'], spec({}, events), p.io);
    await tick();
    expect(events).toEqual(['start 7']);
    p.signal('SIGTERM');
    expect(await running).toBe(0);
    expect(events).toEqual(['start 7', 'close']);
    expect(p.logged.some((l) => l.msg === 'stopping')).toBe(true);
    expect(p.listeners()).toBe(0);
  });

  it('a second signal while closing exits 1 at once', async () => {
    const p = fakeIo();
    let finishClose!: () => void;
    const running = runService(['--port', '7'], spec({ start: async () => ({ close: () => new Promise<void>((r) => { finishClose = r; }) }) }), p.io);
    await tick();
    p.signal('SIGINT');
    await tick();
    expect(p.exits).toEqual([]);
    p.signal('SIGINT');
    expect(p.exits).toEqual([1]);
    finishClose();
    expect(await running).toBe(0);
  });

  it('an uncaught failure while running is logged with its reason and exits 1', async () => {
    const p = fakeIo();
    const running = runService(['--port', '7'], spec(), p.io);
    await tick();
    p.uncaught(new Error('disk on fire'));
    expect(p.exits).toEqual([1]);
    expect(p.logged.some((l) => l.level === 60 && l.msg === 'uncaught failure: disk on fire; exiting')).toBe(true);
    p.signal('SIGTERM');
    await running;
  });
});
