import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../rig/index.js';
import { startControlPlaneChild } from './fleet-process.js';

const ROOT = resolve(import.meta.dirname, '../..');

/**
 * The compiled `berth` command as an operator runs it: `berth control-plane` reads its duration
 * flags with the one duration grammar (common/grammar.ts), and the verbs that work offline
 * (`manifests validate|schema`, `keygen`) are CLI verbs, `manifest` being the older spelling.
 */
describe('the berth command', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-cp-flags-'));
  const children: ChildProcess[] = [];

  function start(args: string[]): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
    let output = '';
    const child = spawn(process.execPath, [join(ROOT, 'dist/bin/berth.js'), 'control-plane', '--db', `file:${join(dir, 'berth.db')}`, '--data-dir', dir, ...args], {
      env: { ...process.env, BERTH_LOG_LEVEL: 'warn', BERTH_ADMIN_TOKEN: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    child.stdout?.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (output += b.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    return { child, output: () => output, exited };
  }

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('starts with --offline-after 1h30m and --document-ttl 1d, listens, and stops on SIGTERM to its pid', async () => {
    const port = await freePort();
    // Ready once /healthz answers (startControlPlaneChild fails with the log if it exits first).
    const cp = await startControlPlaneChild({ dir, port, adminToken: '', args: ['--offline-after', '1h30m', '--document-ttl', '1d'], name: 'flags' });
    expect(await cp.svc.kill('SIGTERM')).toEqual({ code: 0, signal: null });
  });

  function berth(args: string[]): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [join(ROOT, 'dist/bin/berth.js'), ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  it('prints its version, answers `help VERB`, and reaches every verb of cli/ (vars, policies, keys…)', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(berth(['--version'])).toMatchObject({ code: 0, stdout: `berth ${pkg.version}\n` });
    const help = berth(['help', 'audit']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('usage: berth audit');
    expect(help.stdout).toContain('--before ID');
    expect(berth(['help', 'devices', 'list']).stdout).toContain('usage: berth devices list');
    for (const verb of ['vars', 'policies', 'keys', 'webhooks', 'fleet']) expect(berth([verb, '--help']), verb).toMatchObject({ code: 0 });
    expect(berth(['nonsense']).code).toBe(2);
    // Global flags before the verb reach the CLI, and the singular noun is the plural's other spelling.
    const before = berth(['-o', 'xml', 'campaign', 'list']);
    expect([before.code, before.stderr.split('\n')[0]]).toEqual([2, 'berth: --output "xml" is not a known format']);
  });

  it('validates manifests under both spellings, prints the schema, and writes keys', () => {
    const example = join(ROOT, 'manifests/examples/minimal.yaml');
    const now = berth(['manifests', 'validate', example]);
    expect([now.code, now.stderr]).toEqual([0, '']);
    expect(now.stdout).toMatch(/^OK .*minimal\.yaml \(\S+@\S+, digest sha256:[a-f0-9]{64}\)\n$/);
    expect(berth(['manifest', 'validate', example])).toEqual(now);
    expect(JSON.parse(berth(['manifest', 'schema']).stdout).title).toBe('Berth deployment manifest');
    const key = join(dir, 'device.key');
    const made = berth(['keygen', '--out', key]);
    expect([made.code, made.stdout]).toEqual([0, expect.stringMatching(/^[A-Za-z0-9_-]{43}\n$/)]);
    expect(statSync(key).mode & 0o777).toBe(0o600);
    expect(berth(['keygen', '--out', key]).code).toBe(1);
    const help = berth(['--help']);
    // Every verb of cli/'s table with what it does, the plural nouns with their subcommands; no hidden one.
    for (const line of [/^ {2}login +store the control plane URL/m, /^ {2}devices +import \| list \| show/m, /^ {2}campaigns +create \| start/m, /^ {2}keygen +write an Ed25519 key pair/m, /^ {2}completion +print a shell completion script/m]) expect(help.stdout).toMatch(line);
    expect(help.stdout).not.toContain('__complete');
  });

  it('refuses a bare number, saying which flag and that it needs a unit, and never listens', async () => {
    const port = await freePort();
    const cp = start(['--listen', `127.0.0.1:${port}`, '--offline-after', '90']);
    expect(await cp.exited).toBe(2);
    expect(cp.output()).toContain('--offline-after: expected a duration like 30s, 1m30s or 500ms, got "90": a number needs a unit (90s? 90m?)');
    expect(await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status, () => 'refused')).toBe('refused');
  });
});
