import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { startControlPlane } from '../../control-plane/index.js';

describe('control plane bootstrap', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('refuses a preset admin token it would never accept, naming the variable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-cp-boot-'));
    dirs.push(dir);
    await expect(
      startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'berth.db')}`, dataDir: dir, adminToken: 'hunter2', log: createLogger('control-plane', { level: 'silent' }) }),
    ).rejects.toThrow(/BERTH_ADMIN_TOKEN must look like berth_/);
  });
});
