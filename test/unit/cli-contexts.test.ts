import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { chooseContext, loadConfig, loadConfigFile, parseConfigFile, resolveConnection, saveConfig, saveConfigFile, type ConfigFile } from '../../cli/config.js';

/** Contexts in the one config file (issue 16): the pure choice and precedence, and the file itself. */
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const two: ConfigFile = {
  current: 'staging',
  contexts: {
    staging: { server: 'http://staging:7600', token: 'staging-token' },
    prod: { server: 'https://prod:7600', token: 'prod-token', caFile: '/etc/berth/ca.pem' },
  },
};

describe('config contexts', () => {
  it('reads a file from before contexts as the one context "default", current', () => {
    expect(parseConfigFile(JSON.stringify({ server: 'http://a:1', token: 't', caFile: '/ca.pem' }), 'f')).toEqual({ current: 'default', contexts: { default: { server: 'http://a:1', token: 't', caFile: '/ca.pem' } } });
    expect(parseConfigFile('{}', 'f')).toEqual({ contexts: {} });
    // A current that names no context is no current context (never a crash at the next command).
    expect(parseConfigFile(JSON.stringify({ current: 'gone', contexts: { a: { server: 'http://a:1' } } }), 'f')).toEqual({ contexts: { a: { server: 'http://a:1' } } });
    expect(() => parseConfigFile(JSON.stringify({ contexts: [] }), '/x/config.json')).toThrow(/config file \/x\/config.json: "contexts" is not an object/);
    expect(() => parseConfigFile(JSON.stringify({ contexts: { a: 'http://a' } }), 'f')).toThrow(/context "a" is not an object/);
  });

  it('--context beats BERTH_CONTEXT beats the current one; an unknown name is a usage error listing the known', () => {
    expect(chooseContext(two, undefined, {})).toEqual({ name: 'staging', stored: two.contexts.staging, explicit: false });
    expect(chooseContext(two, undefined, { BERTH_CONTEXT: 'prod' })).toMatchObject({ name: 'prod', explicit: true });
    expect(chooseContext(two, 'staging', { BERTH_CONTEXT: 'prod' })).toMatchObject({ name: 'staging', explicit: true });
    expect(chooseContext({ contexts: {} }, undefined, {})).toEqual({ stored: {}, explicit: false });
    let err: unknown;
    try {
      chooseContext(two, 'production', {});
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ message: 'no context "production" (from --context)', hint: 'known contexts: staging, prod (berth context list)', exitCode: 2 });
    expect(() => chooseContext(two, undefined, { BERTH_CONTEXT: 'x' })).toThrow(/from BERTH_CONTEXT/);
  });

  it('a context named on purpose beats BERTH_SERVER and BERTH_TOKEN (flags still win); the current one does not', () => {
    const env = { BERTH_SERVER: 'http://env:1', BERTH_TOKEN: 'env-token' };
    const prod = chooseContext(two, 'prod', env);
    expect(resolveConnection({}, env, prod.stored, prod.explicit)).toEqual({ server: 'https://prod:7600', serverFrom: 'config', token: 'prod-token', tokenFrom: 'config', caFile: '/etc/berth/ca.pem' });
    expect(resolveConnection({ token: 'flag-token' }, env, prod.stored, prod.explicit)).toMatchObject({ server: 'https://prod:7600', token: 'flag-token', tokenFrom: 'flag' });
    const current = chooseContext(two, undefined, env);
    expect(resolveConnection({}, env, current.stored, current.explicit)).toMatchObject({ server: 'http://env:1', token: 'env-token' });
  });

  it('login into the current context keeps every other one; the old file is rewritten in the new form, 0600', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-ctx-'));
    dirs.push(dir);
    const path = join(dir, 'berth', 'config.json');
    await saveConfigFile(path, { contexts: {} });
    await writeFile(path, JSON.stringify({ server: 'http://old:7600', token: 'old-token' }), { mode: 0o600 });
    expect(await loadConfig(path)).toEqual({ server: 'http://old:7600', token: 'old-token' });
    expect(await saveConfig(path, { server: 'http://new:7600', token: 'new-token' }, 'staging')).toBe('staging');
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({
      current: 'default',
      contexts: { default: { server: 'http://old:7600', token: 'old-token' }, staging: { server: 'http://new:7600', token: 'new-token' } },
    });
    expect(await saveConfig(path, { server: 'http://old:7600', token: 'fresh' })).toBe('default');
    expect((await loadConfigFile(path)).contexts).toMatchObject({ default: { token: 'fresh' }, staging: { token: 'new-token' } });
    expect(await loadConfig(path, 'staging')).toEqual({ server: 'http://new:7600', token: 'new-token' });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'berth'))).mode & 0o777).toBe(0o700);
  });
});
