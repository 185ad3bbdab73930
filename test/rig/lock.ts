import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A cross-process lock made of a directory (mkdir is atomic), holding the owner's pid. Several
 * teammates' vitest runs start and stop the shared rig concurrently; this serializes them. A lock
 * whose owner died is taken over, so a crashed run never wedges the next one.
 */
export async function withLock<T>(lockDir: string, fn: () => Promise<T>, timeoutMs = 170_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(`${lockDir}/owner`, String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (isStale(lockDir)) {
        rmSync(lockDir, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`rig lock ${lockDir} still held by pid ${ownerOf(lockDir) ?? '?'} after ${timeoutMs} ms`);
      await sleep(150);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

function ownerOf(lockDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(`${lockDir}/owner`, 'utf8'));
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isStale(lockDir: string): boolean {
  const owner = ownerOf(lockDir);
  if (owner === undefined) {
    // Between mkdir and writing the owner file; only stale if it stays that way.
    try {
      return Date.now() - statSync(lockDir).mtimeMs > 10_000;
    } catch {
      return false;
    }
  }
  try {
    process.kill(owner, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
