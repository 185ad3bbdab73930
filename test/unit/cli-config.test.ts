import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { configPath, loadConfig, resolveConnection, saveConfig } from '../../cli/config.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('connection precedence', () => {
  const stored = { server: 'http://config:7600', token: 'config-token' };
  it('prefers flags over the environment over the config file, for each value separately', () => {
    expect(resolveConnection({ server: 'http://flag:1', token: 'flag-token' }, { BERTH_SERVER: 'http://env:2', BERTH_TOKEN: 'env-token' }, stored)).toEqual({
      server: 'http://flag:1', serverFrom: 'flag', token: 'flag-token', tokenFrom: 'flag',
    });
    expect(resolveConnection({}, { BERTH_SERVER: 'http://env:2', BERTH_TOKEN: 'env-token' }, stored)).toMatchObject({ server: 'http://env:2', serverFrom: 'env', tokenFrom: 'env' });
    expect(resolveConnection({ server: 'http://flag:1' }, {}, stored)).toMatchObject({ server: 'http://flag:1', token: 'config-token', tokenFrom: 'config' });
    expect(resolveConnection({}, { BERTH_TOKEN: '' }, stored)).toMatchObject({ server: 'http://config:7600', token: 'config-token' });
  });
  it('normalizes the URL and refuses a missing or malformed server', () => {
    expect(resolveConnection({ server: 'http://127.0.0.1:7600/' }, {}, {}).server).toBe('http://127.0.0.1:7600');
    expect(() => resolveConnection({}, {}, {})).toThrow(/no control plane configured/);
    expect(() => resolveConnection({ server: 'not a url' }, {}, {})).toThrow(/--server.*is not a URL/s);
    expect(() => resolveConnection({}, { BERTH_SERVER: 'ftp://x' }, {})).toThrow(/must be http or https/);
  });
  it('leaves the token undefined when none is given (the command decides)', () => {
    expect(resolveConnection({ server: 'http://x' }, {}, {}).token).toBeUndefined();
  });
});

describe('config file', () => {
  it('lives under XDG_CONFIG_HOME when set to an absolute path, else ~/.config', () => {
    expect(configPath({ XDG_CONFIG_HOME: '/xdg' }, '/home/u')).toBe('/xdg/berth/config.json');
    expect(configPath({ XDG_CONFIG_HOME: 'relative' }, '/home/u')).toBe('/home/u/.config/berth/config.json');
    expect(configPath({}, '/home/u')).toBe('/home/u/.config/berth/config.json');
  });
  it('is written 0600 and read back; a missing file is empty; a broken one is an error naming it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-cli-'));
    dirs.push(dir);
    const path = join(dir, 'berth', 'config.json');
    expect(await loadConfig(path)).toEqual({});
    await saveConfig(path, { server: 'http://127.0.0.1:7600', token: 'secret' });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await loadConfig(path)).toEqual({ server: 'http://127.0.0.1:7600', token: 'secret' });
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ current: 'default', contexts: { default: { server: 'http://127.0.0.1:7600', token: 'secret' } } });
    await writeFile(path, '{nope');
    await expect(loadConfig(path)).rejects.toThrow(new RegExp(`config file ${path} is not valid JSON`));
  });
});
