import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { relayNotices, type RelayLink } from '../../control-plane/cluster-relay.js';
import { workersOf } from '../../control-plane/cluster-size.js';
import { DeviceTokenCache } from '../../control-plane/device-api/token-cache.js';
import { DesiredWaiters } from '../../control-plane/devices/desired-waiters.js';
import { TypedEmitter } from '../../control-plane/events.js';

describe('--workers', () => {
  it('defaults to the number of cores, and to 1 for a database that lives in one process', () => {
    expect(workersOf(undefined, 'file:/var/lib/berth/berth.db')).toBe(Math.min(64, availableParallelism()));
    expect(workersOf('', 'libsql://db.example.com')).toBe(Math.min(64, availableParallelism()));
    expect(workersOf(undefined, 'file::memory:')).toBe(1);
    expect(workersOf('3', 'file:./data/berth.db')).toBe(3);
    expect(workersOf('1', ':memory:')).toBe(1);
  });

  it('refuses what is not a whole number from 1 to 64, and several processes on a private database', () => {
    for (const bad of ['0', '-1', '1.5', 'two', '65', ' 2']) expect(() => workersOf(bad, 'file:x.db'), bad).toThrow(`--workers "${bad}": a whole number of processes from 1 to 64 is expected`);
    expect(() => workersOf('2', 'file::memory:')).toThrow(/--workers 2: the processes must share the database/);
    expect(() => workersOf('2', 'file:x.db?mode=memory&cache=shared')).toThrow(/must share the database/);
  });
});

/** Two workers' relays joined through a primary that passes each message to the other worker. */
function pair() {
  const log = createLogger('test', { level: 'silent' });
  const listeners: ((msg: unknown) => void)[][] = [[], []];
  const sent: unknown[] = [];
  const workers = [0, 1].map((i) => {
    const loads = { n: 0 };
    const ctx = {
      events: new TypedEmitter(),
      keys: { load: async () => void loads.n++ },
      deviceTokens: new DeviceTokenCache(10),
      waiters: new DesiredWaiters(),
      log,
    };
    const link: RelayLink = {
      send(msg) {
        sent.push(msg);
        // Through the primary as cluster IPC would: a structured clone, to the other worker only.
        for (const fn of listeners[1 - i]) fn(structuredClone(msg));
      },
      onMessage(fn) {
        listeners[i].push(fn);
        return () => listeners[i].splice(listeners[i].indexOf(fn), 1);
      },
    };
    const stop = relayNotices(ctx as never, link);
    return { ctx, loads, stop };
  });
  /** A message as the primary would pass it to worker `i`. */
  const deliver = (i: number, msg: unknown) => listeners[i].forEach((fn) => fn(msg));
  return { workers, sent, deliver };
}

describe('notices between workers', () => {
  it('reloads the signing keys and forgets verified tokens when another worker changed a key', async () => {
    const { workers, sent } = pair();
    workers[1].ctx.deviceTokens.set('a-token', { sub: 'dev_1', epoch: 0, exp: 2e9 });
    workers[0].ctx.deviceTokens.set('a-token', { sub: 'dev_1', epoch: 0, exp: 2e9 });
    workers[0].ctx.events.emit('signing-keys-changed', { kid: 'k-2' });
    expect(sent).toEqual([{ berth: 'notice', name: 'signing-keys-changed', payload: { kid: 'k-2' } }]);
    expect(workers[1].ctx.deviceTokens.size).toBe(0);
    await new Promise((r) => setImmediate(r));
    // The worker that changed the key reloaded it itself (operators/routes.ts): the notice is for the others.
    expect([workers[0].loads.n, workers[1].loads.n, workers[0].ctx.deviceTokens.size]).toEqual([0, 1, 1]);
  });

  it("answers a revoked device's long poll on the other worker, without emitting the event there again", async () => {
    const { workers } = pair();
    const heard: unknown[] = [];
    workers[1].ctx.events.on('device-revoked', (p) => heard.push(p));
    const waiting = workers[1].ctx.waiters.wait('dev_9', 60_000).then(() => 'woken');
    expect(workers[1].ctx.waiters.has('dev_9')).toBe(true);
    workers[0].ctx.events.emit('device-revoked', { deviceId: 'dev_9' });
    expect(await waiting).toBe('woken');
    expect(workers[1].ctx.waiters.has('dev_9')).toBe(false);
    // Its scheduler records nothing twice: the worker that revoked it did.
    expect(heard).toEqual([]);
  });

  it('sends no other event (each process records its own devices), and nothing after stop', () => {
    const { workers, sent } = pair();
    workers[0].ctx.events.emit('report', { deviceId: 'dev_1', report: {} as never, previousPhase: null });
    workers[0].ctx.events.emit('device-enrolled', { deviceId: 'dev_1' });
    workers[0].ctx.events.emit('campaign-created', { campaignId: 'c1' });
    workers[0].stop();
    workers[0].ctx.events.emit('signing-keys-changed', { kid: 'k-3' });
    expect(sent).toEqual([]);
  });

  it('ignores messages that are not notices', async () => {
    const { workers, deliver } = pair();
    workers[1].ctx.deviceTokens.set('a-token', { sub: 'dev_1', epoch: 0, exp: 2e9 });
    for (const msg of [null, 'signing-keys-changed', { berth: 'stop' }, { berth: 'notice', name: 'report', payload: {} }, { berth: 'notice', name: 'signing-keys-changed' }, { berth: 'event', name: 'signing-keys-changed', payload: { kid: 'k' } }]) deliver(1, msg);
    await new Promise((r) => setImmediate(r));
    expect([workers[1].loads.n, workers[1].ctx.deviceTokens.size]).toEqual([0, 1]);
    deliver(1, { berth: 'notice', name: 'signing-keys-changed', payload: { kid: 'k' } });
    await new Promise((r) => setImmediate(r));
    expect([workers[1].loads.n, workers[1].ctx.deviceTokens.size]).toEqual([1, 0]);
  });
});
