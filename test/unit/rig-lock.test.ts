import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { withLock } from '../rig/lock.js';

describe('rig lock', () => {
  const dirs: string[] = [];
  const fresh = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'rig-lock-'));
    dirs.push(dir);
    return join(dir, 'rig.lock');
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('runs holders one after the other and releases the lock', async () => {
    const lock = fresh();
    const events: string[] = [];
    const holder = (name: string) => async () => {
      events.push(`${name} in`);
      await sleep(50);
      events.push(`${name} out`);
    };
    await Promise.all([withLock(lock, holder('a')), withLock(lock, holder('b'))]);
    expect(events).toEqual(['a in', 'a out', 'b in', 'b out']);
    expect(existsSync(lock)).toBe(false);
  });

  it('releases the lock when the holder throws', async () => {
    const lock = fresh();
    await expect(withLock(lock, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(existsSync(lock)).toBe(false);
  });

  it('takes over a lock left by a dead process', async () => {
    const lock = fresh();
    const dead = spawnSync(process.execPath, ['-e', 'process.exit(0)']).pid;
    mkdirSync(lock);
    writeFileSync(join(lock, 'owner'), String(dead));
    expect(await withLock(lock, async () => 'got it', 5_000)).toBe('got it');
  });

  it('waits for, then gives up on, a lock held by a live process', async () => {
    const lock = fresh();
    mkdirSync(lock);
    writeFileSync(join(lock, 'owner'), String(process.ppid));
    await expect(withLock(lock, async () => 'never', 500)).rejects.toThrow(new RegExp(`held by pid ${process.ppid}`));
  });
});
