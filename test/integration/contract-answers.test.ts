import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The answer check is only worth something if a mismatch really fails a test. This runs vitest on a
 * fixture whose one test passes by itself but makes a route answer outside its contract, with the
 * same setup file as this suite, and expects the run to fail, naming the route and the field.
 */
describe('answers outside the contract', () => {
  it('fail the test file that caused them', () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    const run = spawnSync(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', '--config', 'test/integration/contract-fixture/vitest.config.ts'], {
      cwd: root,
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
      timeout: 120_000,
    });
    const output = run.stdout + run.stderr;
    expect(run.status, output).toBe(1);
    expect(output).toContain('1 answer(s) outside the contract');
    expect(output).toContain('"route":"/v1/count","status":200,"problem":"count: Invalid input: expected number, received string"');
  });
});
