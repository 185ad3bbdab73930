import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../common/log.js';
import { createContext, type ControlPlaneContext } from '../../control-plane/context.js';
import { migrate, openDatabase } from '../../control-plane/db/open.js';
import { DesiredWaiters } from '../../control-plane/devices/desired-waiters.js';
import { TypedEmitter } from '../../control-plane/events.js';
import { DEFAULTS } from '../../control-plane/index.js';
import { ImageRegistry } from '../../control-plane/manifests/registry.js';
import { LastSeen } from '../../control-plane/devices/last-seen.js';
import { DeviceTokenCache } from '../../control-plane/device-api/token-cache.js';
import { SigningKeys } from '../../control-plane/signing-keys.js';
import { KeyVault } from '../../control-plane/secrets/key-vault.js';

/**
 * A control-plane context on a real libSQL file in `dir` (migrated), without HTTP or background
 * jobs: for tests of what runs on the database. Two calls on one file are two processes' views.
 */
export async function fileContext(dir: string, file: string, opts: { now?: () => Date } = {}): Promise<{ ctx: ControlPlaneContext; close(): void }> {
  const log = createLogger('control-plane', { level: 'silent' });
  const { client, db } = await openDatabase(`file:${join(dir, file)}`);
  await migrate(client, log);
  const vault = await KeyVault.open(dir, undefined, log);
  const keys = new SigningKeys(db, 1000, vault);
  const ctx = createContext({ db, client, log, events: new TypedEmitter(), config: { ...DEFAULTS, registryProxy: null, dataDir: dir, publicUrl: null }, keys, waiters: new DesiredWaiters(), registry: new ImageRegistry(null, async () => '', log), seen: new LastSeen(), deviceTokens: new DeviceTokenCache(0), vault, now: opts.now });
  return { ctx, close: () => client.close() };
}

/**
 * Two processes' views (`a`, `b`) of one migrated libSQL file in a fresh temp dir named after
 * `prefix`; `close` closes both and removes the dir.
 */
export async function twoViews(prefix: string): Promise<{ dir: string; a: ControlPlaneContext; b: ControlPlaneContext; close(): void }> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const one = await fileContext(dir, 'berth.db');
  const two = await fileContext(dir, 'berth.db');
  return {
    dir,
    a: one.ctx,
    b: two.ctx,
    close() {
      one.close();
      two.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
