import { hostname } from 'node:os';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { deadOnThisHost, leaseStep } from '../../control-plane/lease.js';
import { DesiredWaiters } from '../../control-plane/devices/desired-waiters.js';

describe('the singletons lease (pure decisions)', () => {
  it('renews its own, takes a free, expired or dead one, and waits for a live holder', () => {
    expect(leaseStep(undefined, 'me', 100)).toBe('take');
    expect(leaseStep({ holder: 'me', expiresAt: 50 }, 'me', 100)).toBe('renew');
    expect(leaseStep({ holder: 'me', expiresAt: 150 }, 'me', 100)).toBe('renew');
    expect(leaseStep({ holder: 'other', expiresAt: 150 }, 'me', 100)).toBe('wait');
    expect(leaseStep({ holder: 'other', expiresAt: 100 }, 'me', 100)).toBe('take');
    expect(leaseStep({ holder: 'other', expiresAt: 150 }, 'me', 100, (h) => h === 'other')).toBe('take');
  });

  it('calls a holder dead only when it is a gone process on this host', () => {
    const gone = spawnSync(process.execPath, ['-e', '0']).pid as number;
    expect(deadOnThisHost(`${hostname()}:${gone}:abcd`)).toBe(true);
    expect(deadOnThisHost(`${hostname()}:${process.ppid}:abcd`)).toBe(false);
    expect(deadOnThisHost(`${hostname()}:${process.pid}:abcd`)).toBe(false);
    expect(deadOnThisHost(`another-host.example:${gone}:abcd`)).toBe(false);
    expect(deadOnThisHost('not-a-holder-id')).toBe(false);
  });
});

describe('desired-state waiters', () => {
  it('registers at enter, so a wake between enter and await is not lost; leave removes it', async () => {
    const w = new DesiredWaiters();
    const a = w.enter('dev-1', 60_000);
    expect(w.has('dev-1')).toBe(true);
    w.wake('dev-1');
    // Wakes are delivered in batches on later turns of the event loop (desired-waiters.ts, WAKE_BATCH).
    expect(await a.woken).toBe('changed');
    expect(w.has('dev-1')).toBe(false);
    const b = w.enter('dev-2', 60_000);
    b.leave();
    expect(w.size).toBe(0);
    await b.woken;
    w.close();
    await w.enter('dev-3', 60_000).woken;
    expect(w.size).toBe(0);
  });
});
