import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningControlPlane } from '../../control-plane/index.js';
import { startSecurityPlane, stopSecurityPlane } from './security-support.js';
import { runCaptured } from './cli-support.js';
import { call, csvOf, enroll, newDevice } from './control-plane-support.js';

/** Clear screen, an OSC-8 link, a cursor move and a carriage return, a C1 CSI and a right-to-left override. */
const HOSTILE = 'disk full\x1b[2J\x1b]8;;http://evil.example\x07click\x1b]8;;\x07\x1b[5A\rOK\x9b1m\u202egnirts';

/**
 * Finding 10: `berth devices show` printed report fields raw, so escape sequences a device sent
 * reached the operator's terminal. Now every control character in human-readable output is shown
 * as text; the CLI's own colours still work; `--output json` is the exact value.
 */
describe('finding 10: what a device reports cannot drive the operator terminal', () => {
  let dir: string;
  let cp: RunningControlPlane;

  beforeAll(async () => {
    ({ dir, cp } = await startSecurityPlane('sec10'));
  });
  afterAll(() => stopSecurityPlane(cp, dir));

  it('shows control characters from a report as text in devices show and list, and keeps JSON exact', async () => {
    const d = newDevice('SEC10-GW');
    expect((await call(cp.url, 'POST', '/v1/devices/import', { token: cp.adminToken, text: csvOf([d]), type: 'text/csv' })).status).toBe(200);
    const { token } = await enroll(cp.url, d);
    const report = { sequence: 1, desiredSequence: null, running: `evil\x1b[2J@1.0`, phase: 'failed', bytes: { done: 0, total: 0 }, services: { web: { image: 'x\x1b[31m', status: 'exited', health: 'none', restarts: 0, lastError: HOSTILE } }, error: HOSTILE, at: new Date().toISOString() };
    expect((await call(cp.url, 'POST', '/v1/device/report', { token, json: report })).status).toBe(202);

    const env = { HOME: dir, XDG_CONFIG_HOME: join(dir, 'cfg'), BERTH_SERVER: cp.url, BERTH_TOKEN: cp.adminToken as string, TERM: 'xterm' };
    for (const argv of [['devices', 'show', d.serial], ['devices', 'list']]) {
      // On a terminal, with colours: only the CLI's own SGR sequences may carry ESC.
      const c = await runCaptured(argv, env, { tty: true });
      expect(c.code, c.stderr).toBe(0);
      const text = c.stdout;
      expect(text.replace(/\x1b\[[0-9;]*m/g, ''), argv.join(' ')).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]/);
    }
    const shown = await runCaptured(['devices', 'show', d.serial], env);
    expect(shown.code).toBe(0);
    const text = shown.stdout;
    expect(text).toContain('disk full\\x1b[2J\\x1b]8;;http://evil.example\\x07click');
    expect(text).toContain('\\x1b[5A\\x0dOK\\u009b1m\\u202egnirts');

    const json = await runCaptured(['devices', 'show', d.serial, '--output', 'json'], env);
    expect(json.code).toBe(0);
    const twin = JSON.parse(json.stdout);
    expect(twin.reported.error).toBe(HOSTILE);
    expect(twin.services.web.lastError).toBe(HOSTILE);
    expect(twin.services.web.reportedImage).toBe('x\x1b[31m');
  });
});
