import { stat, statfs } from 'node:fs/promises';
import type { EngineClient } from '../engine/client.js';
import type { Logger } from '../gateway-log.js';
import { DiskSpaceError } from './errors.js';
import { engineRootDir } from './engine.js';
import { diskChecks } from './plan.js';

async function freeBytes(path: string): Promise<number> {
  const s = await statfs(path);
  // bavail, not bfree: the blocks reserved for root are not ours to count on.
  return s.bavail * s.bsize;
}

/**
 * Throws DiskSpaceError when the missing bytes plus the margin do not fit on the state dir's
 * filesystem or the engine's data root. Reads only: called before the first byte is written.
 */
export async function checkDiskSpace(opts: { stateDir: string; missingBytes: number; engineBytes?: number; marginBytes: number; docker: EngineClient; log: Logger }): Promise<void> {
  const { stateDir, missingBytes, engineBytes, marginBytes, docker, log } = opts;
  const stateDev = (await stat(stateDir)).dev;
  let engineRoot: { path: string; dev: number } | undefined;
  try {
    const root = await engineRootDir(docker);
    if (root) engineRoot = { path: root, dev: (await stat(root)).dev };
  } catch (err) {
    // The engine may run in another mount namespace or deny us its root: check what we can see.
    log.debug({ err: (err as Error).message }, "engine data root not accessible; checking the state dir's filesystem only");
  }
  for (const check of diskChecks({ missingBytes, engineBytes, marginBytes, stateDir: { path: stateDir, dev: stateDev }, engineRoot })) {
    const free = await freeBytes(check.path);
    if (free < check.needed) throw new DiskSpaceError(check.needed, free, check.where);
  }
}
