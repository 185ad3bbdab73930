import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@libsql/client';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { forgeImage } from '../rig/forge.js';
import { rigFromEnv } from '../rig/index.js';
import { runCaptured, type CliRun } from './cli-support.js';
import { call, csvOf, enroll, jwtPayload, newDevice } from './control-plane-support.js';
import { waitFor } from './fleet.js';

/**
 * The verbs and rails of issue 16 against a real control plane (libSQL file, HTTP on loopback)
 * that pins tags against the rig's registry: contexts, devices assign|rollback|history|rm, keys
 * list|rotate|revoke, and confirmation of destructive verbs.
 */
const ADMIN = 'berth_' + randomBytes(32).toString('base64url');
let dir: string;
let cp: RunningControlPlane;
let image = '';
let pinned = '';

interface CliOpts { stdin?: string; env?: NodeJS.ProcessEnv; tty?: { answer: string } }

/** The CLI in process with its own streams; `tty` makes stdin a terminal that answers the confirmation. */
function cli(argv: string[], opts: CliOpts = {}): Promise<CliRun> {
  const env = opts.env ?? { BERTH_SERVER: cp.url, BERTH_TOKEN: ADMIN, HOME: dir, XDG_CONFIG_HOME: join(dir, 'no-config') };
  return runCaptured(argv, env, { stdin: opts.stdin, answer: opts.tty?.answer });
}

const manifest = (version: string, extra = '') => `name: verbs
version: ${version}
services:
  app:
    image: ${image}${extra}
`;

async function apply(version: string, extra = ''): Promise<void> {
  const file = join(dir, `verbs-${version}.yaml`);
  await writeFile(file, manifest(version, extra));
  const r = await cli(['apply', '-f', file]);
  expect(r.code, r.stderr).toBe(0);
}

async function auditActions(): Promise<{ action: string; target: string; before: unknown }[]> {
  return (await call(cp.url, 'GET', '/v1/audit?order=newest&limit=50', { token: ADMIN })).body.entries;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-cli-verbs-'));
  const rig = rigFromEnv();
  const forged = await forgeImage(rig.registry, `berth-test/cli-verbs-${process.pid}`, 'v1', { layers: [{ files: { 'v.txt': 'v\n' } }] });
  image = forged.tagReference;
  pinned = forged.reference;
  cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'cp.db')}`, dataDir: dir, adminToken: ADMIN, log: createLogger('cp', { level: 'silent' }) });
  await apply('1.0.0');
  await apply('2.0.0', '\n    environment: { MODE: two }');
});

afterAll(async () => {
  await cp?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('berth context', () => {
  it('adds contexts with the token from stdin (checked first), lists them without tokens, switches, and removes only when confirmed', async () => {
    const viewer = (await call(cp.url, 'POST', '/v1/tokens', { token: ADMIN, json: { name: 'viewer', role: 'viewer' } })).body.token as string;
    const env = { HOME: dir, XDG_CONFIG_HOME: join(dir, 'ctx-config') };
    const file = join(dir, 'ctx-config', 'berth', 'config.json');

    const refused = await cli(['context', 'add', 'prod', '--server', cp.url], { env, stdin: 'berth_wrong\n' });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/login to .* failed: .*\[401 invalid-token\]/);
    await expect(stat(file)).rejects.toThrow(/ENOENT/);

    expect((await cli(['context', 'add', 'prod', '--server', cp.url], { env, stdin: ADMIN + '\n' })).code).toBe(0);
    const second = await cli(['context', 'add', 'audit-desk', '--server', cp.url + '/'], { env, stdin: viewer });
    expect(second.stdout).toContain('the current context is still prod');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await cli(['context', 'add', 'prod', '--server', cp.url], { env, stdin: ADMIN })).code).toBe(2);
    expect((await cli(['context', 'add', 'Bad Name', '--server', cp.url], { env, stdin: ADMIN })).code).toBe(2);

    const listed = await cli(['context', 'list', '-o', 'json'], { env });
    expect(JSON.parse(listed.stdout)).toEqual([
      { name: 'audit-desk', current: false, server: cp.url, caFile: null, token: true },
      { name: 'prod', current: true, server: cp.url, caFile: null, token: true },
    ]);
    const table = await cli(['context', 'list'], { env });
    expect(table.stdout).toMatch(/^\*\s+prod\s/m);
    expect(table.stdout + listed.stdout).not.toContain(ADMIN);
    expect(table.stdout + listed.stdout).not.toContain(viewer);

    // The current context (admin) may list tokens; --context picks the viewer's for one command,
    // and beats BERTH_TOKEN in the environment (an admin token must not leak into the other context).
    expect((await cli(['tokens', 'list'], { env })).code).toBe(0);
    const asViewer = await cli(['tokens', 'list', '--context', 'audit-desk'], { env: { ...env, BERTH_TOKEN: ADMIN } });
    expect(asViewer.code).toBe(1);
    expect(asViewer.stderr).toMatch(/403/);
    expect((await cli(['tokens', 'list'], { env: { ...env, BERTH_CONTEXT: 'audit-desk' } })).code).toBe(1);
    const unknown = await cli(['tokens', 'list', '--context', 'staging'], { env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('known contexts: prod, audit-desk');

    expect((await cli(['context', 'use', 'audit-desk'], { env })).stdout).toBe(`switched to context audit-desk (${cp.url})`);
    expect((await cli(['tokens', 'list'], { env })).code).toBe(1);
    expect((await cli(['context', 'use', 'nope'], { env })).code).toBe(2);

    const before = await readFile(file, 'utf8');
    const unconfirmed = await cli(['context', 'rm', 'audit-desk'], { env });
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toContain('remove context audit-desk needs confirmation: there is no terminal to ask on, and --yes was not given');
    const declined = await cli(['context', 'rm', 'audit-desk'], { env, tty: { answer: 'n' } });
    expect(declined.code).toBe(1);
    expect(declined.asked).toEqual(['remove context audit-desk? [y/N] ']);
    expect(await readFile(file, 'utf8')).toBe(before);
    const removed = await cli(['context', 'rm', 'audit-desk', '--yes'], { env });
    expect(removed.stdout).toContain('there is no current context now');
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ contexts: { prod: { server: cp.url, token: ADMIN } } });
  });

  it('reads a config file from before contexts as it was, and `login` writes into the current context keeping the others', async () => {
    const env = { HOME: dir, XDG_CONFIG_HOME: join(dir, 'old-config') };
    const file = join(dir, 'old-config', 'berth', 'config.json');
    await rm(join(dir, 'old-config'), { recursive: true, force: true });
    await cli(['context', 'list'], { env });
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(dir, 'old-config', 'berth'), { recursive: true, mode: 0o700 });
    await writeFile(file, JSON.stringify({ server: cp.url, token: ADMIN }), { mode: 0o600 });
    expect((await cli(['manifests', 'list', '-o', 'name'], { env })).stdout).toBe('verbs@2.0.0\nverbs@1.0.0');
    expect(JSON.parse((await cli(['context', 'list', '-o', 'json'], { env })).stdout)).toEqual([{ name: 'default', current: true, server: cp.url, caFile: null, token: true }]);

    expect((await cli(['login', '--context', 'second', '--server', cp.url], { env, stdin: ADMIN })).stdout).toContain('as context second');
    expect((await cli(['login', '--server', cp.url], { env, stdin: ADMIN })).stdout).toContain('as context default');
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ current: 'default', contexts: { default: { server: cp.url, token: ADMIN }, second: { server: cp.url, token: ADMIN } } });
  });
});

describe('berth devices assign|rollback|history|rm', () => {
  const d = newDevice(`verbs-${process.pid}`);
  let deviceId = '';
  let deviceToken = '';

  beforeAll(async () => {
    expect((await call(cp.url, 'POST', '/v1/devices/import', { token: ADMIN, text: csvOf([d]), type: 'text/csv' })).status).toBe(200);
    ({ deviceId, token: deviceToken } = await enroll(cp.url, d));
  });

  it('assigns a version directly and rolls back to the one before, each audited; a bad release is a usage error', async () => {
    const first = await cli(['devices', 'assign', d.serial, 'verbs@1.0.0']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`^${d.serial}: assigned verbs@1.0.0 \\(document \\d+\\)$`));
    const second = await cli(['devices', 'assign', d.serial, 'verbs@2.0.0', '-o', 'json']);
    expect(JSON.parse(second.stdout)).toMatchObject({ serial: d.serial, release: 'verbs@2.0.0' });
    expect((await call(cp.url, 'GET', `/v1/devices/${d.serial}`, { token: ADMIN })).body.desired.release).toBe('verbs@2.0.0');

    const back = await cli(['devices', 'rollback', d.serial]);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toMatch(/rolled back to verbs@1\.0\.0/);
    expect((await call(cp.url, 'GET', `/v1/devices/${d.serial}`, { token: ADMIN })).body.desired.release).toBe('verbs@1.0.0');
    const actions = (await auditActions()).filter((e) => e.target === d.serial).map((e) => e.action);
    expect(actions.slice(0, 3)).toEqual(['device.rollback', 'device.assign', 'device.assign']);

    const bad = await cli(['devices', 'assign', d.serial, 'verbs@1']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/NAME@VERSION.*semantic version/);
    const missing = await cli(['devices', 'assign', d.serial, 'verbs@9.9.9']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/verbs@9\.9\.9 is not published.*\[404 manifest-not-found\]/);
  });

  it('history shows the newest reports, oldest first, also when fewer are asked for than are kept', async () => {
    for (let seq = 1; seq <= 3; seq++) {
      const body = { sequence: seq, desiredSequence: null, running: seq === 3 ? 'verbs@1.0.0' : null, phase: seq === 3 ? 'running' : 'downloading', bytes: { done: seq, total: 3 }, services: {}, at: new Date().toISOString(), ...(seq === 2 ? { error: 'disk\nfull' } : {}) };
      expect((await call(cp.url, 'POST', '/v1/device/report', { token: deviceToken, json: body })).status).toBe(202);
    }
    const all = JSON.parse((await cli(['devices', 'history', d.serial, '-o', 'json'])).stdout) as { sequence: number }[];
    expect(all.map((r) => r.sequence)).toEqual([1, 2, 3]);
    const last = JSON.parse((await cli(['devices', 'history', d.serial, '--limit', '2', '-o', 'json'])).stdout) as { sequence: number }[];
    expect(last.map((r) => r.sequence)).toEqual([2, 3]);
    const table = await cli(['devices', 'history', d.serial]);
    expect(table.stdout.split('\n')).toHaveLength(4);
    expect(table.stdout).toMatch(/3\s+-\s+verbs@1\.0\.0\s+running/);
    expect(table.stdout).toContain('disk ⏎ full');
    expect((await cli(['devices', 'history', d.serial, '--limit', '0'])).code).toBe(2);
  });

  it('rm refuses an unrevoked device and, with no terminal and no --yes, anything; then removes all of it, keeping its id revoked', async () => {
    expect((await cli(['vars', 'set', 'SITE=lab', '--device', d.serial])).code).toBe(0);
    expect((await call(cp.url, 'GET', `/v1/vars`, { token: ADMIN })).body.variables).toHaveLength(1);
    const notRevoked = await cli(['devices', 'rm', d.serial, '--yes']);
    expect(notRevoked.code).toBe(1);
    expect(notRevoked.stderr).toContain(`device ${d.serial} is enrolled; revoke it first`);
    expect(notRevoked.stderr).toContain('[409 device-not-revoked]');

    const noTty = await cli(['devices', 'revoke', d.serial]);
    expect(noTty.code).toBe(2);
    expect(noTty.stderr).toContain(`revoke device ${d.serial} needs confirmation`);
    expect((await call(cp.url, 'GET', `/v1/devices/${d.serial}`, { token: ADMIN })).body.status).toBe('enrolled');
    const asked = await cli(['devices', 'revoke', d.serial], { tty: { answer: 'y' } });
    expect(asked.code, asked.stderr).toBe(0);
    expect(asked.asked).toEqual([`revoke device ${d.serial}? [y/N] `]);

    expect((await cli(['devices', 'rm', d.serial])).code).toBe(2);
    expect((await cli(['devices', 'rm', d.serial], { tty: { answer: '' } })).code).toBe(1);
    expect((await call(cp.url, 'GET', `/v1/devices/${d.serial}/history`, { token: ADMIN })).body.reports).toHaveLength(3);

    // Its sightings written: a sighting row left behind would fail the removal (foreign key).
    await cp.ctx.seen.flush(cp.ctx.write);
    const sightings = () => cp.ctx.db.all(sql`SELECT device_id FROM device_sightings WHERE device_id = ${deviceId}`);
    expect(await sightings()).toHaveLength(1);
    const removed = await cli(['devices', 'rm', d.serial, '--yes']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(await sightings()).toEqual([]);
    expect(removed.stdout).toBe(`${d.serial}: removed`);
    expect((await call(cp.url, 'GET', `/v1/devices/${d.serial}`, { token: ADMIN })).status).toBe(404);
    expect((await call(cp.url, 'GET', `/v1/vars`, { token: ADMIN })).body).toEqual({ variables: [] });
    const entry = (await auditActions()).find((e) => e.action === 'device.remove');
    expect(entry).toMatchObject({ target: d.serial, before: { id: deviceId, status: 'revoked', variables: ['SITE'] } });
    // Its pull tokens may still live: the registry proxy keeps refusing them.
    expect((await call(cp.url, 'GET', '/v1/revocations')).body.subjects).toContain(`device:${deviceId}`);
    // The device's old credentials name a device that is gone.
    expect((await call(cp.url, 'GET', '/v1/device/desired', { token: deviceToken })).status).toBe(401);
    expect((await cli(['devices', 'rm', d.serial, '--yes'])).stderr).toContain('[404 device-not-found]');
    // The manufacturer's record can come back: a new device under the same serial.
    expect((await call(cp.url, 'POST', '/v1/devices/import', { token: ADMIN, text: csvOf([d]), type: 'text/csv' })).body).toMatchObject({ created: 1 });
  });

  it('removes nothing when any part of the removal fails: a row elsewhere that still names the device aborts it whole', async () => {
    const e = newDevice(`verbs-fk-${process.pid}`);
    expect((await call(cp.url, 'POST', '/v1/devices/import', { token: ADMIN, text: csvOf([e]), type: 'text/csv' })).status).toBe(200);
    const { deviceId: id, token } = await enroll(cp.url, e);
    const report = { sequence: 1, desiredSequence: null, running: null, phase: 'idle', bytes: { done: 0, total: 0 }, services: {}, at: new Date().toISOString() };
    expect((await call(cp.url, 'POST', '/v1/device/report', { token, json: report })).status).toBe(202);
    expect((await cli(['vars', 'set', 'RACK=7', '--device', e.serial])).code).toBe(0);
    expect((await cli(['devices', 'revoke', e.serial, '--yes'])).code).toBe(0);
    // A table the removal does not know of, pointing at the device: the last delete (the device
    // row) breaks the foreign key after every other delete of the transaction has run.
    const db = createClient({ url: `file:${join(dir, 'cp.db')}` });
    try {
      await db.execute('CREATE TABLE test_device_refs (device_id TEXT NOT NULL REFERENCES devices(id))');
      await db.execute({ sql: 'INSERT INTO test_device_refs VALUES (?)', args: [id] });
      const failed = await cli(['devices', 'rm', e.serial, '--yes']);
      expect(failed.code).toBe(1);
      expect((await call(cp.url, 'GET', `/v1/devices/${e.serial}`, { token: ADMIN })).body).toMatchObject({ status: 'revoked', id });
      expect((await call(cp.url, 'GET', `/v1/devices/${e.serial}/history`, { token: ADMIN })).body.reports).toHaveLength(1);
      expect((await call(cp.url, 'GET', `/v1/vars?device=${e.serial}`, { token: ADMIN })).body.values).toEqual([{ name: 'RACK', value: '7', source: 'device' }]);
      expect((await auditActions()).filter((a) => a.action === 'device.remove' && a.target === e.serial)).toEqual([]);
      expect((await db.execute({ sql: 'SELECT count(*) AS n FROM removed_devices WHERE device_id = ?', args: [id] })).rows[0].n).toBe(0);
      await db.execute('DROP TABLE test_device_refs');
    } finally {
      db.close();
    }
    expect((await cli(['devices', 'rm', e.serial, '--yes'])).code).toBe(0);
  });

  it('rm refuses a revoked device an active campaign still holds, and removes it once the campaign let it go', async () => {
    const group = `held-${process.pid}`;
    const pair = [newDevice(`verbs-held-a-${process.pid}`), newDevice(`verbs-held-b-${process.pid}`)];
    expect((await call(cp.url, 'POST', '/v1/devices/import', { token: ADMIN, text: csvOf(pair, () => `grp=${group}`), type: 'text/csv' })).status).toBe(200);
    const tokens = await Promise.all(pair.map(async (p) => (await enroll(cp.url, p)).token));
    const created = await cli(['campaigns', 'create', '--manifest', 'verbs@1.0.0', '--selector', `grp=${group}`, '--waves', '1,100%', '--start', '-o', 'json']);
    expect(created.code, created.stderr).toBe(0);
    const campaign = JSON.parse(created.stdout).id as string;
    // The first wave's one device runs the release healthy; the second wave's never reports.
    const first = await waitFor('a first-wave document', async () => {
      for (let i = 0; i < pair.length; i++) {
        const r = await call(cp.url, 'GET', '/v1/device/desired', { token: tokens[i] });
        if (r.status === 200) return { i, sequence: jwtPayload(r.body.document as string).sequence as number };
      }
      return undefined;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    const held = pair[first.i];
    const report = { sequence: 1, desiredSequence: first.sequence, running: 'verbs@1.0.0', phase: 'running', bytes: { done: 0, total: 0 }, services: { app: { image: 'app', status: 'running', health: 'healthy', restarts: 0 } }, at: new Date().toISOString() };
    expect((await call(cp.url, 'POST', '/v1/device/report', { token: tokens[first.i], json: report })).status).toBe(202);
    await waitFor('the first wave to pass', async () => ((await call(cp.url, 'GET', `/v1/campaigns/${campaign}`, { token: ADMIN })).body.devices.succeeded === 1 ? true : undefined), { timeoutMs: 30_000, intervalMs: 100 });

    expect((await cli(['devices', 'revoke', held.serial, '--yes'])).code).toBe(0);
    const refused = await cli(['devices', 'rm', held.serial, '--yes']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`device ${held.serial} is still held by campaign ${campaign}; wait for it to finish or abort it`);
    expect(refused.stderr).toContain('[409 device-in-campaign]');
    expect((await call(cp.url, 'GET', `/v1/devices/${held.serial}`, { token: ADMIN })).status).toBe(200);

    expect((await cli(['campaigns', 'abort', campaign, '--yes'])).code).toBe(0);
    const removed = await cli(['devices', 'rm', held.serial, '--yes']);
    expect(removed.code, removed.stderr).toBe(0);
    const entry = (await auditActions()).find((a) => a.action === 'device.remove' && a.target === held.serial);
    expect(entry?.before).toMatchObject({ campaigns: [campaign] });
  });
});

describe('berth keys', () => {
  it('lists the signing keys with their state, rotates, and revokes only when confirmed', async () => {
    const before = JSON.parse((await cli(['keys', 'list', '-o', 'json'])).stdout) as { kid: string; state: string; inJwks: boolean }[];
    expect(before).toHaveLength(1);
    expect(before[0]).toMatchObject({ state: 'active', inJwks: true, retiredAt: null });
    expect((await cli(['keys', 'rotate'])).code).toBe(0);
    const after = JSON.parse((await cli(['keys', 'list', '-o', 'json'])).stdout) as { kid: string; state: string; inJwks: boolean; verifiesUntil: string | null }[];
    expect(after.map((k) => k.state)).toEqual(['active', 'retired']);
    expect(after[1]).toMatchObject({ kid: before[0].kid, inJwks: true });
    expect(after[1].verifiesUntil).not.toBeNull();

    const unconfirmed = await cli(['keys', 'revoke', before[0].kid]);
    expect(unconfirmed.code).toBe(2);
    expect((await cli(['keys', 'revoke', before[0].kid, '--yes'])).code).toBe(0);
    const table = (await cli(['keys', 'list'])).stdout;
    expect(table).toMatch(new RegExp(`${before[0].kid}\\s+revoked`));
    expect(table).not.toMatch(/PRIVATE|BEGIN/);
  });
});

/**
 * Every row of every table, read from the database file by a client of its own. `leases` is left
 * out: its holder renews it on a timer (control-plane/lease.ts), a heartbeat rather than a change.
 */
async function dump(dbFile: string): Promise<string> {
  const db = createClient({ url: `file:${dbFile}` });
  try {
    const tables = (await db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN ('leases') ORDER BY name")).rows.map((r) => String(r.name));
    const out: Record<string, unknown[]> = {};
    for (const t of tables) out[t] = (await db.execute(`SELECT * FROM "${t}" ORDER BY 1`)).rows.map((r) => ({ ...r }));
    return JSON.stringify(out);
  } finally {
    db.close();
  }
}

describe('berth apply --dry-run and --diff', () => {
  let own: RunningControlPlane;
  let dbFile = '';
  const env = () => ({ BERTH_SERVER: own.url, BERTH_TOKEN: ADMIN, HOME: dir, XDG_CONFIG_HOME: join(dir, 'no-config') });
  const file = async (name: string, text: string) => {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  };

  beforeAll(async () => {
    // A control plane of its own with no devices: nothing else writes while the database is compared.
    dbFile = join(dir, 'dry-run.db');
    own = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${dbFile}`, dataDir: join(dir, 'dry-run-data'), adminToken: ADMIN, log: createLogger('cp', { level: 'silent' }) });
    expect((await cli(['apply', '-f', await file('dry-1.yaml', manifest('1.0.0'))], { env: env() })).code).toBe(0);
  });
  afterAll(async () => {
    await own?.close();
  });

  it('validates, pins every tag and prints the result and its privileges, and leaves the database as it was', async () => {
    const v2 = await file('dry-2.yaml', manifest('2.0.0', '\n    network_mode: host\n    environment: { MODE: two }'));
    const before = await dump(dbFile);
    const r = await cli(['apply', '-f', v2, '--dry-run'], { env: env() });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^dry run: verbs@2\.0\.0 would be published {2}sha256:[0-9a-f]{64}$/m);
    expect(r.stdout).toContain(pinned);
    expect(r.stdout).toContain('network_mode=host');
    expect(r.stdout).toMatch(/nothing was published \(--dry-run\)$/);
    expect(r.stdout).not.toContain('changes from');

    const j = await cli(['apply', '-f', v2, '--dry-run', '--diff', '-o', 'json'], { env: env() });
    const preview = JSON.parse(j.stdout);
    expect(preview).toMatchObject({ name: 'verbs', version: '2.0.0', outcome: 'new', publishedDigest: null, latest: { release: 'verbs@1.0.0' }, services: { app: pinned } });
    expect(preview.diff.services).toEqual([expect.objectContaining({ service: 'app', change: 'changed' })]);
    const withDiff = await cli(['apply', '-f', v2, '--dry-run', '--diff'], { env: env() });
    expect(withDiff.stdout).toContain('changes from verbs@1.0.0 (the version published last) to this file:');
    expect(withDiff.stdout).toMatch(/MODE/);

    const invalid = await cli(['apply', '-f', await file('dry-bad.yaml', 'name: verbs\nversion: 3.0.0\nservices:\n  app:\n    imag: x\n  db:\n    image: 5\n'), '--dry-run'], { env: env() });
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/^berth: checking .*dry-bad\.yaml failed: \d+ problem\(s\), nothing was published \[422 invalid-manifest\]$/m);
    expect(invalid.stderr.split('\n').filter((l) => l.startsWith('  dry-bad.yaml:')).length).toBeGreaterThanOrEqual(2);
    const unresolved = await cli(['apply', '-f', await file('dry-tag.yaml', manifest('3.0.0').replace(':v1', ':no-such-tag')), '--dry-run'], { env: env() });
    expect(unresolved.code).toBe(1);
    expect(unresolved.stderr).toContain('[422 unresolved-image]');

    expect(await dump(dbFile)).toBe(before);
    expect((await cli(['manifests', 'list', '-o', 'name'], { env: env() })).stdout).toBe('verbs@1.0.0');

    // What the dry run showed is what publishing stores.
    const published = await cli(['apply', '-f', v2, '--diff', '-o', 'json'], { env: env() });
    expect(published.code, published.stderr).toBe(0);
    expect(published.stderr).toContain('changes from verbs@1.0.0');
    expect(JSON.parse(published.stdout)).toMatchObject({ created: true, digest: preview.digest, services: { app: pinned } });
  });

  it('says that publishing would change nothing, or would be refused (exit 1), and needs the release-manager role', async () => {
    const same = await cli(['apply', '-f', join(dir, 'dry-1.yaml'), '--dry-run'], { env: env() });
    expect(same.code).toBe(0);
    expect(same.stdout).toContain('dry run: verbs@1.0.0 is already published with this content; publishing would change nothing');
    const other = await cli(['apply', '-f', await file('dry-1b.yaml', manifest('1.0.0', '\n    environment: { X: y }')), '--dry-run'], { env: env() });
    expect(other.code).toBe(1);
    expect(other.stdout).toMatch(/verbs@1\.0\.0 is already published with other content \(sha256:[0-9a-f]{64}\); publishing would be refused \(409\)/);
    const viewer = (await call(own.url, 'POST', '/v1/tokens', { token: ADMIN, json: { name: 'v', role: 'viewer' } })).body.token as string;
    const refused = await cli(['apply', '-f', join(dir, 'dry-1.yaml'), '--dry-run'], { env: { ...env(), BERTH_TOKEN: viewer } });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('[403');
  });
});

describe('campaign ids by unique prefix', () => {
  it('takes any unique prefix wherever a campaign id is taken, lists the matches of an ambiguous one, and shows short ids in lists', async () => {
    const created = await cli(['campaigns', 'create', '--manifest', 'verbs@1.0.0', '--selector', 'nobody=here', '--waves', '100%', '--allow-empty', '--name', 'prefix', '-o', 'json']);
    expect(created.code, created.stderr).toBe(0);
    const id = JSON.parse(created.stdout).id as string;
    // Two more whose ids share their first 36 characters, written beside it in the database file.
    const twins = ['cmp_abcdef01-0000-4000-8000-000000000001', 'cmp_abcdef01-0000-4000-8000-000000000002'];
    const db = createClient({ url: `file:${join(dir, 'cp.db')}` });
    try {
      for (const twin of twins) {
        await db.execute({ sql: `INSERT INTO campaigns (id, name, manifest_id, release, selector, spec, status, current_wave, created_at, created_by, updated_at)
          SELECT ?, name, manifest_id, release, selector, spec, status, current_wave, created_at, created_by, updated_at FROM campaigns WHERE id = ?`, args: [twin, id] });
      }
    } finally {
      db.close();
    }

    const short = id.slice(0, 12);
    const list = await cli(['campaigns', 'list']);
    expect(list.stdout).toMatch(new RegExp(`^${short}\\s+prefix\\s`, 'm'));
    expect(list.stdout).not.toContain(id);
    for (const twin of twins) expect(list.stdout).toMatch(new RegExp(`^${twin}\\s`, 'm'));
    expect((await cli(['campaigns', 'list', '-o', 'wide'])).stdout).toContain(id);
    expect(JSON.parse((await cli(['campaigns', 'list', '-o', 'json'])).stdout).map((c: { id: string }) => c.id)).toContain(id);

    expect(JSON.parse((await cli(['campaigns', 'status', short, '-o', 'json'])).stdout).id).toBe(id);
    expect(JSON.parse((await cli(['campaigns', 'status', id.slice(4, 10), '-o', 'json'])).stdout).id).toBe(id);
    const ambiguous = await cli(['campaigns', 'status', 'abcdef01']);
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stderr).toContain('campaign id prefix cmp_abcdef01 is ambiguous: 2 campaigns match');
    for (const twin of twins) expect(ambiguous.stderr).toContain(`  ${twin}  prefix  verbs@1.0.0  draft`);
    expect(JSON.parse((await cli(['campaigns', 'status', twins[1].slice(4), '-o', 'json'])).stdout).id).toBe(twins[1]);
    const none = await cli(['campaigns', 'status', 'ffff0000']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no campaign id starts with cmp_ffff0000');

    const unconfirmed = await cli(['campaigns', 'abort', short]);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toContain(`abort campaign ${id} needs confirmation`);
    expect(JSON.parse((await cli(['campaigns', 'status', short, '-o', 'json'])).stdout).status).toBe('draft');
    const aborted = await cli(['campaigns', 'abort', short, '--yes', '-o', 'json']);
    expect(aborted.code, aborted.stderr).toBe(0);
    expect(JSON.parse(aborted.stdout)).toMatchObject({ id, status: 'aborted' });
  });
});
