import { mkdtemp, readdir, stat, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StateDir, writeAtomic, EMPTY_JOURNAL, type Journal } from '../../edge-daemon/state.js';

const tmp = () => mkdtemp(join(tmpdir(), 'berth-state-'));

describe('state dir', () => {
  it('writes files whole, 0600, leaving no temp file behind', async () => {
    const dir = await tmp();
    const path = join(dir, 'sub', 'x.json');
    await writeAtomic(path, 'one');
    await writeAtomic(path, 'two');
    expect(await readFile(path, 'utf8')).toBe('two');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readdir(join(dir, 'sub'))).toEqual(['x.json']);
  });

  it('round-trips credentials, journal and report sequence', async () => {
    const s = new StateDir(join(await tmp(), 'state'));
    await s.init();
    expect(await s.loadCredentials()).toBeUndefined();
    expect(await s.loadJournal()).toEqual(EMPTY_JOURNAL);
    expect(await s.loadReportSequence()).toBe(0);
    const creds = { deviceId: 'd1', serial: 'SN1', token: 't', tokenExpiresAt: new Date(0).toISOString(), registryProxy: null, jwks: { keys: [{ kty: 'OKP', kid: 'k' }] }, controlPlane: 'http://cp' };
    await s.saveCredentials(creds);
    expect(await s.loadCredentials()).toEqual(creds);
    expect((await stat(s.path('credentials.json'))).mode & 0o777).toBe(0o600);
    const release = { sequence: 3, name: 'site', version: '1.0.0', digest: 'sha256:' + 'a'.repeat(64), spec: { name: 'site', version: '1.0.0', services: {}, volumes: {}, update: { strategy: 'download-then-swap' as const, healthTimeoutMs: 1000 } } };
    const journal: Journal = {
      current: release,
      previous: null,
      inflight: { target: { ...release, sequence: 4 }, step: 2, kind: 'start', rollingBack: true, rollback: { phase: 'failed', reason: 'engine gone' }, startedAt: new Date(0).toISOString() },
      lastSequence: 4,
      failure: null,
    };
    await s.saveJournal(journal);
    expect(await s.loadJournal()).toEqual(journal);
    await s.saveReportSequence(41);
    expect(await s.loadReportSequence()).toBe(41);
  });

  it('names the file and the field when a state file is damaged', async () => {
    const s = new StateDir(await tmp());
    await writeFile(s.path('release.json'), '{"current": 5}');
    await expect(s.loadJournal()).rejects.toThrow(/release\.json is malformed: current/);
    await writeFile(s.path('credentials.json'), 'not json');
    await expect(s.loadCredentials()).rejects.toThrow(/credentials\.json is not JSON/);
  });
});
