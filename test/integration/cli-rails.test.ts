import { createPublicKey } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { runCaptured, type CliRun } from './cli-support.js';
import type { AuditEntry } from '../../cli/client.js';
import { createLogger } from '../../common/log.js';
import { startControlPlane, type RunningControlPlane } from '../../control-plane/index.js';
import { call, csvOf, enroll, newDevice } from './control-plane-support.js';

/**
 * The CLI's silent or misleading answers (issue 16, "Bugs"), each against a real control plane
 * (libSQL file, HTTP on loopback) with no registry: none of these needs an image.
 */
let dir: string;
let cp: RunningControlPlane;
const bigFleet = Array.from({ length: 10_001 }, (_, i) => `fl-${String(i).padStart(5, '0')}`);
let bigFleetCsv: string;

beforeAll(async () => {
  // 10,001 keys take seconds of synchronous work: made before the server (in this process) exists.
  // Made between two requests, they held the event loop past the keep-alive timeout, and the next
  // request went out on a connection the server closed as soon as its timers ran (ECONNRESET).
  bigFleetCsv = ['serial,public_key,labels', ...bigFleet.map((s) => `${s},${newDevice(s).publicKey},fleet=big`)].join('\n') + '\n';
  dir = await mkdtemp(join(tmpdir(), 'berth-cli-rails-'));
  cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'berth.db')}`, dataDir: dir, registryProxy: null, log: createLogger('cp', { level: 'silent' }) });
});
afterAll(async () => {
  await cp?.close();
  await rm(dir, { recursive: true, force: true });
});

function cli(argv: string[], opts: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliRun> {
  const env = opts.env ?? { BERTH_SERVER: cp.url, BERTH_TOKEN: cp.adminToken, HOME: dir, XDG_CONFIG_HOME: join(dir, 'config') };
  return runCaptured(argv, env, { stdin: opts.stdin });
}

describe('berth audit', () => {
  it('shows the newest entries first, one page at a time, and says where the next page is', async () => {
    const d = newDevice('rails-audit');
    expect((await call(cp.url, 'POST', '/v1/devices/import', { token: cp.adminToken, text: csvOf([d]), type: 'text/csv' })).status).toBe(200);
    for (let i = 0; i < 130; i++) {
      const r = await call(cp.url, 'PATCH', `/v1/devices/${d.serial}/labels`, { token: cp.adminToken, json: { set: { n: String(i) }, remove: [] } });
      expect(r.status).toBe(200);
    }
    const first = await cli(['audit', '-o', 'json']);
    expect(first.code).toBe(0);
    const page1 = JSON.parse(first.stdout) as AuditEntry[];
    expect(page1).toHaveLength(100);
    expect(page1[0]).toMatchObject({ action: 'device.labels', after: { n: '129' } });
    const ids = page1.map((e) => Number(e.id));
    expect(ids).toEqual([...ids].sort((a, b) => b - a));
    const last = ids[ids.length - 1];
    expect(first.stderr).toContain(`more entries exist: 100 shown, newest first; the next page: berth audit --before ${last}`);

    const second = await cli(['audit', '-o', 'json', '--before', String(last)]);
    const page2 = JSON.parse(second.stdout) as AuditEntry[];
    expect(Number(page2[0].id)).toBe(last - 1);
    expect(page2.some((e) => e.action === 'device.import')).toBe(true);
    expect(second.stderr).toBe('');

    const small = await cli(['audit', '--limit', '3']);
    expect(small.stdout.split('\n')).toHaveLength(4);
    expect(small.stdout).toContain('{"n":"129"}');
    expect(small.stderr).toMatch(/--before \d+ --limit 3$/);
    expect((await cli(['audit', '--limit', '0'])).code).toBe(2);
  });
});

describe('berth devices list', () => {
  it('lists every device past the 10,000 one request may carry, and a cut list says how to see the rest', async () => {
    const serials = bigFleet;
    const imported = await call(cp.url, 'POST', '/v1/devices/import', { token: cp.adminToken, text: bigFleetCsv, type: 'text/csv' });
    expect(imported.body).toMatchObject({ created: 10_001 });

    const all = await cli(['devices', 'list', '-l', 'fleet=big', '-o', 'json']);
    expect(all.code).toBe(0);
    expect((JSON.parse(all.stdout) as { serial: string }[]).map((d) => d.serial)).toEqual(serials);
    expect(all.stderr).toBe('');

    const cut = await cli(['devices', 'list', '-l', 'fleet=big', '--limit', '2']);
    expect(cut.stdout.split('\n').slice(1).map((l) => l.split(' ')[0])).toEqual(['fl-00000', 'fl-00001']);
    expect(cut.stderr).toBe("2 of 10001 device(s) shown; the next page: berth devices list -l 'fleet=big' --limit 2 --after fl-00001");
    const next = await cli(['devices', 'list', '-l', 'fleet=big', '--limit', '2', '--after', 'fl-00001', '-o', 'json']);
    expect((JSON.parse(next.stdout) as { serial: string }[]).map((d) => d.serial)).toEqual(['fl-00002', 'fl-00003']);
    expect((await cli(['devices', 'list', '--limit', '0'])).code).toBe(2);
  });
});

describe('berth devices import', () => {
  it('imports a PEM key quoted over several lines, and a bad quote costs only its own line', async () => {
    const [pemDev, a, b] = [newDevice('imp-pem'), newDevice('imp-after-1'), newDevice('imp-after-2')];
    const pem = (createPublicKey(pemDev.privateKey).export({ format: 'pem', type: 'spki' }) as string).trim();
    const rows = ['serial,public_key,labels', `${pemDev.serial},"${pem}",site=berlin`];
    const bad = join(dir, 'pem-bad.csv');
    // Lines 2-4: the PEM record (an Ed25519 key is 3 lines). Line 5: a character after the closing quote; 6 and 7 must still be read.
    await writeFile(bad, [...rows, 'imp-bq,"AAAA"x,', `${a.serial},${a.publicKey},`, `${b.serial},${b.publicKey},`].join('\n') + '\n');
    const refused = await cli(['devices', 'import', bad, '-o', 'json']);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout)).toMatchObject({ errorCount: 1, errors: [{ line: 5, message: expect.stringMatching(/^"x" after a closing quote/) }] });

    const good = join(dir, 'pem.csv');
    await writeFile(good, [...rows, `${a.serial},${a.publicKey},`, `${b.serial},${b.publicKey},`].join('\n') + '\n');
    const imported = await cli(['devices', 'import', good]);
    expect(imported.stderr).toBe('');
    expect(imported.stdout).toBe('imported 3 record(s): 3 new, 0 updated, 0 unchanged');
    await enroll(cp.url, pemDev);
    expect((await call(cp.url, 'GET', `/v1/devices/${pemDev.serial}`, { token: cp.adminToken })).body).toMatchObject({ serial: pemDev.serial, labels: { site: 'berlin' } });
  });

  it('prints every bad line the server reports, caps them with the count, and -o json carries the whole answer', async () => {
    const good = newDevice('imp-good');
    const file = join(dir, 'bad.csv');
    await writeFile(file, ['serial,public_key,labels', `${good.serial},${good.publicKey},`, 'imp-1,AAAA,', 'imp-2,AAAA,', 'imp-3,AAAA,'].join('\n') + '\n');
    const text = await cli(['devices', 'import', file]);
    expect(text.code).toBe(1);
    expect(text.stdout).toBe('');
    const lines = text.stderr.split('\n');
    expect(lines[0]).toMatch(/^berth: importing .*bad\.csv failed: 3 bad line\(s\); nothing was imported \[422 /);
    expect(lines.slice(1).map((l) => l.split(':')[0])).toEqual(['  line 3', '  line 4', '  line 5']);

    const json = await cli(['devices', 'import', file, '-o', 'json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ errorCount: 3, errors: [{ line: 3 }, { line: 4 }, { line: 5 }], error: { code: expect.any(String) } });

    const many = join(dir, 'many.csv');
    await writeFile(many, ['serial,public_key,labels', ...Array.from({ length: 150 }, (_, i) => `imp-m${i},AAAA,`)].join('\n') + '\n');
    const capped = await cli(['devices', 'import', many]);
    const out = capped.stderr.split('\n');
    expect(out.filter((l) => l.startsWith('  line '))).toHaveLength(100);
    expect(out[out.length - 1]).toBe('  … and 50 more bad line(s) (the server reports the first 100)');
    expect((await call(cp.url, 'GET', `/v1/devices/${good.serial}`, { token: cp.adminToken })).status).toBe(404);
  });
});

describe('berth login', () => {
  it('says the login failed, and why, when the token is refused or the server is unreachable', async () => {
    const env = { HOME: dir, XDG_CONFIG_HOME: join(dir, 'login-config') };
    const bad = await cli(['login', '--server', cp.url], { stdin: 'berth_not-a-token\n', env });
    expect(bad.code).toBe(1);
    const [line, hint] = bad.stderr.split('\n');
    expect(line).toMatch(new RegExp(`^berth: login to ${cp.url.replace(/[.]/g, '\\.')} failed: .+ \\[401 invalid-token\\]$`));
    expect(hint).toBe('  the token is wrong, expired or revoked; nothing was saved');
    expect(bad.stderr).not.toMatch(/manifests/);

    const gone = await cli(['login', '--server', 'http://127.0.0.1:9'], { stdin: 'berth_x\n', env });
    expect(gone.code).toBe(1);
    expect(gone.stderr.split('\n')[0]).toMatch(/^berth: login to http:\/\/127\.0\.0\.1:9 failed: cannot reach the control plane/);
  });
});

describe('berth apply', () => {
  it('prints one manifest problem per line, each with file:line:col', async () => {
    const file = join(dir, 'broken.yaml');
    await writeFile(file, ['name: broken', 'version: 1.0.0', 'services:', '  app:', '    image: registry.example.com/acme/app:1.0', '    restart: sometimes', '    mem_limit: lots', '  agent:', '    ports: 12', ''].join('\n'));
    const r = await cli(['apply', '-f', file]);
    expect(r.code).toBe(1);
    const [head, ...problems] = r.stderr.split('\n');
    expect(head).toMatch(/^berth: publishing .*broken\.yaml failed: \d+ problem\(s\), nothing was published \[422 /);
    expect(problems.length).toBeGreaterThanOrEqual(3);
    for (const p of problems) expect(p).toMatch(/^  broken\.yaml:\d+:\d+: services\./);
    expect(problems.some((p) => p.startsWith('  broken.yaml:6:'))).toBe(true);
    expect(problems.some((p) => p.startsWith('  broken.yaml:7:'))).toBe(true);
    expect(r.stderr).not.toContain('; ');
    const json = await cli(['apply', '-f', file, '-o', 'json']);
    expect(JSON.parse(json.stdout).errors.length).toBe(problems.length);
  });
});

describe('berth campaign create', () => {
  it('refuses a selector that picks no enrolled device, saying how many matched, unless --allow-empty', async () => {
    const pending = [newDevice('cmp-a'), newDevice('cmp-b')];
    expect((await call(cp.url, 'POST', '/v1/devices/import', { token: cp.adminToken, text: csvOf(pending, () => 'ring=empty'), type: 'text/csv' })).status).toBe(200);
    const create = (extra: string[]) => cli(['campaign', 'create', '--manifest', 'ghost@1.0.0', '--selector', 'ring=empty', '--waves', '100%', ...extra]);
    const refused = await create([]);
    expect(refused.code).toBe(1);
    expect(refused.stderr.split('\n')[0]).toBe('berth: the selector "ring=empty" picks no enrolled device (2 matched but are not enrolled); nothing was created');
    expect(refused.stderr).toContain('--allow-empty');
    expect((await call(cp.url, 'GET', '/v1/campaigns', { token: cp.adminToken })).body.campaigns).toEqual([]);
    // Past the check, the server is asked: here it names the manifest no one published.
    const allowed = await create(['--allow-empty']);
    expect(allowed.stderr).toMatch(/ghost@1\.0\.0.*\[404 /);
    await enroll(cp.url, pending[1]);
    expect((await create([])).stderr).toMatch(/ghost@1\.0\.0.*\[404 /);
  });
});

describe('--output', () => {
  it('wide, yaml and name work on every verb, and an unknown format is a usage error', async () => {
    const sel = ['devices', 'list', '-l', 'ring=empty'];
    const json = JSON.parse((await cli([...sel, '-o', 'json'])).stdout) as { serial: string; id: string }[];
    expect(json.map((d) => d.serial)).toEqual(['cmp-a', 'cmp-b']);
    expect(parseYaml((await cli([...sel, '-o', 'yaml'])).stdout)).toEqual(json);
    expect((await cli([...sel, '-o', 'name'])).stdout).toBe('cmp-a\ncmp-b');
    const wide = await cli([...sel, '-o', 'wide']);
    expect(wide.stdout.split('\n')[0]).toMatch(/^ID +SERIAL .* SEQUENCE .* SEEN AT +LABELS$/);
    expect(wide.stdout).toContain(json[0].id);
    expect((await cli([...sel])).stdout.split('\n')[0]).not.toMatch(/\bID\b/);
    // Another verb, another shape: the audit page, by entry id.
    const ids = (JSON.parse((await cli(['audit', '--limit', '2', '-o', 'json'])).stdout) as { id: string }[]).map((e) => e.id);
    expect((await cli(['audit', '--limit', '2', '-o', 'name'])).stdout).toBe(ids.join('\n'));
    const bad = await cli([...sel, '-o', 'xml']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--output "xml" is not a known format');
  });
});
