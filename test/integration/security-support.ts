import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { createLogger } from '../../common/log.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';

/** A logger whose JSON lines the test can read. */
export function capturedLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

/** A control plane in this process on its own libSQL file (`<tmp>/cp/berth.db`), logging nothing. */
export async function startSecurityPlane(name: string): Promise<{ dir: string; cp: RunningControlPlane }> {
  const dir = await mkdtemp(join(tmpdir(), `berth-${name}-`));
  const cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'cp', 'berth.db')}`, log: createLogger('control-plane', { level: 'silent' }) });
  return { dir, cp };
}

/** Closes what startSecurityPlane started (either may be missing when it failed) and removes its files. */
export async function stopSecurityPlane(cp: RunningControlPlane | undefined, dir: string | undefined): Promise<void> {
  await cp?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
}
