import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
// A copy anyone may read (the checkout may sit in a directory only root can enter); it imports only node: modules.
// The file's scratch root (test/scratch-setup.ts, made 0700) is opened to be passed through, not listed.
chmodSync(tmpdir(), 0o711);
const dir = mkdtempSync(join(tmpdir(), 'berth-nice-'));
const MODULE = join(dir, 'cluster-nice.mjs');
copyFileSync(join(ROOT, 'dist/control-plane/cluster-nice.js'), MODULE);
chmodSync(dir, 0o755);
chmodSync(MODULE, 0o644);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * The cluster's CPU priority decided in a real process (control-plane/cluster-nice.ts), with and
 * without the privilege to lower a niceness: the primary goes 5 below where it may, else its HTTP
 * workers are planned 5 above it. A child process each, so the test runner keeps its own niceness.
 */
function prioritizeIn(prefix: string[]): { before: number; after: number; workers: number | null } {
  const script = `import(${JSON.stringify(MODULE)}).then(({ prioritizeCluster }) => { const os = require('node:os'); const before = os.getPriority(); const workers = prioritizeCluster(5); console.log(JSON.stringify({ before, after: os.getPriority(), workers })); });`;
  const [cmd, ...args] = [...prefix, process.execPath, '-e', script];
  return JSON.parse(execFileSync(cmd, args, { encoding: 'utf8' }).trim()) as { before: number; after: number; workers: number | null };
}

const asRoot = process.getuid?.() === 0 && existsSync('/usr/bin/setpriv');

describe.skipIf(!asRoot)('the cluster priority, as a process with and without the privilege to lower it', () => {
  it('lowers the primary where permitted, and the workers keep the service\'s niceness', () => {
    const { before, after, workers } = prioritizeIn([]);
    expect(after).toBe(Math.max(-20, before - 5));
    expect(workers).toBe(before);
  });

  it('leaves the primary as it is without the privilege, and plans the workers 5 above it', () => {
    const { before, after, workers } = prioritizeIn(['/usr/bin/setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']);
    expect(after).toBe(before);
    expect(workers).toBe(Math.min(19, before + 5));
  });
});
