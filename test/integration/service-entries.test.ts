import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

/** Runs the compiled `berth` as an operator would; resolves to its exit code and output. */
function berth(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    // A clean environment: a BERTH_* variable of the machine running the tests must not fill a flag in.
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BERTH_')));
    const child = spawn(process.execPath, [join(ROOT, 'dist/bin/berth.js'), ...args], { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('exit', (code) => done({ code, stdout, stderr }));
  });
}

/**
 * Every service entry goes through common/service.ts: a bad or missing flag exits 2 with one line
 * on stderr naming it, before anything starts (no port is opened, no directory created).
 */
describe('service entries refuse bad flags the same way', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['control-plane', ['--bogus'], /^berth control-plane: Unknown option '--bogus'.*\(see berth control-plane --help\)$/],
    ['control-plane', ['--listen', '7600'], /^berth control-plane: --listen "7600": no port/],
    ['control-plane', ['--offline-after', '90'], /^berth control-plane: --offline-after: .*a number needs a unit/],
    ['control-plane', ['--workers', 'two'], /^berth control-plane: --workers "two": a whole number of processes from 1 to 64 is expected/],
    ['registry-proxy', ['--bogus'], /^berth registry-proxy: Unknown option '--bogus'/],
    ['registry-proxy', ['--upstream', 'lab=http://127.0.0.1:5000'], /^berth registry-proxy: --cache-dir \(or BERTH_PROXY_CACHE_DIR\) is required \(see berth registry-proxy --help\)$/],
    ['registry-proxy', ['--cache-dir', '/nonexistent/berth', '--anonymous', '--upstream', 'lab=http://127.0.0.1:5000', '--listen', '[::1:7601'], /^berth registry-proxy: --listen "\[::1:7601": brackets/],
    ['edge-daemon', ['--bogus'], /^berth edge-daemon: Unknown option '--bogus'/],
    ['edge-daemon', ['--serial', 'GW-1'], /^berth edge-daemon: missing --control-plane, --state-dir, --key \(see berth edge-daemon --help\)$/],
  ];

  it.each(cases)('berth %s %j exits 2 with one line', async (service, args, message) => {
    const r = await berth([service, ...args]);
    expect(r.code, r.stderr).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(message);
    expect(r.stdout).toBe('');
  });

  it('--help of each service prints its usage and exits 0', async () => {
    for (const service of ['control-plane', 'registry-proxy', 'edge-daemon']) {
      const r = await berth([service, '--help']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`usage: berth ${service} [options]`);
    }
  });
});
