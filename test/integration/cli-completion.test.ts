import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { bashComplete, berthOnPath } from './bash-completion.js';
import { call, csvOf, newDevice } from './control-plane-support.js';

/**
 * `berth completion bash` loaded into a real bash, completing against a real control plane
 * (libSQL file, HTTP on loopback): the script calls the compiled `berth __complete`, as a shell would.
 * Manifests and campaign ids need a registry: cli.test.ts completes those.
 */
let dir: string;
let cp: RunningControlPlane;
let path: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-cli-completion-'));
  cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'berth.db')}`, dataDir: dir, registryProxy: null, log: createLogger('cp', { level: 'silent' }) });
  path = await berthOnPath(dir);
  const devices = ['tab-a1', 'tab-a2', 'tab-b1'].map(newDevice);
  expect((await call(cp.url, 'POST', '/v1/devices/import', { token: cp.adminToken, text: csvOf(devices, () => 'ring=tab'), type: 'text/csv' })).status).toBe(200);
});
afterAll(async () => {
  await cp?.close();
  await rm(dir, { recursive: true, force: true });
});

async function complete(words: string[], env: Record<string, string> = { BERTH_SERVER: cp.url, BERTH_TOKEN: cp.adminToken ?? '' }): Promise<string[]> {
  // A loaded test machine may answer slower than a person's 2 s.
  const r = await bashComplete(path, words, { HOME: dir, XDG_CONFIG_HOME: join(dir, 'config'), BERTH_COMPLETION_TIMEOUT: '60s', ...env });
  expect(r.code, r.stderr).toBe(0);
  return r.offered;
}

describe('berth completion', () => {
  it('prints a bash script that registers a completion for berth', () => {
    const r = spawnSync('bash', ['-c', 'source <(berth completion bash) && complete -p berth'], { encoding: 'utf8', env: { PATH: path, HOME: dir } });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('complete -o default -F _berth berth');
    const bad = spawnSync(join(dir, 'berth'), ['completion', 'tcsh'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr.split('\n')[0]).toBe('berth: no completion for "tcsh"; use one of: bash, zsh, fish');
  });
  it('completes verbs and flag values through the script (the rest of the table: test/unit/cli-completion.test.ts)', async () => {
    expect(await complete(['campaigns', 'st'])).toEqual(['start', 'status']);
    expect(await complete(['-o', 'y'])).toEqual(['yaml']);
  });
  it('completes serials from the server, one short page from where the typed prefix sorts', async () => {
    expect(await complete(['devices', 'show', 'tab-a'])).toEqual(['tab-a1', 'tab-a2']);
    expect(await complete(['logs', ''])).toEqual(['tab-a1', 'tab-a2', 'tab-b1']);
    expect(await complete(['vars', 'list', '--device', 'tab-b'])).toEqual(['tab-b1']);
  });
  it('completes context names from the config file, without asking any server', async () => {
    const config = join(dir, 'ctx-config');
    await mkdir(join(config, 'berth'), { recursive: true });
    await writeFile(join(config, 'berth', 'config.json'), JSON.stringify({ current: 'staging', contexts: { staging: { server: 'http://127.0.0.1:9' }, 'prod-eu': { server: 'http://127.0.0.1:9' }, 'prod-us': {} } }), { mode: 0o600 });
    const env = { XDG_CONFIG_HOME: config, BERTH_SERVER: 'http://127.0.0.1:9' };
    expect(await complete(['context', 'use', 'prod'], env)).toEqual(['prod-eu', 'prod-us']);
    expect(await complete(['devices', 'list', '--context', ''], env)).toEqual(['prod-eu', 'prod-us', 'staging']);
    expect(await complete(['context', 'rm', 'x'], env)).toEqual([]);
  });
  it('offers nothing, quietly, when the server cannot be asked', async () => {
    expect(await complete(['devices', 'show', 'tab-'], { BERTH_SERVER: 'http://127.0.0.1:9', BERTH_TOKEN: 'berth_x' })).toEqual([]);
    expect(await complete(['devices', 'show', 'tab-'], { BERTH_SERVER: cp.url, BERTH_TOKEN: 'berth_wrong' })).toEqual([]);
  });
});
