import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningControlPlane } from '../../control-plane/index.js';
import { startSecurityPlane, stopSecurityPlane } from './security-support.js';
import { call, csvOf, newDevice } from './control-plane-support.js';

/**
 * Finding 6: every error of an import was collected and returned, each echoing its field in full
 * (a 4 MB CSV of bad lines answered 189 MB; 16 MB took 1.5 GB and ended in a 500). Now: the
 * first 100 errors and the count of all, fields cut at 200 characters, the body parsed as it streams.
 */
describe('finding 6: a file of bad lines makes a small answer', () => {
  let dir: string;
  let cp: RunningControlPlane;

  beforeAll(async () => {
    ({ dir, cp } = await startSecurityPlane('sec06'));
  });
  afterAll(() => stopSecurityPlane(cp, dir));

  const post = (text: string, type = 'text/csv') => call(cp.url, 'POST', '/v1/devices/import', { token: cp.adminToken, text, type });

  it('reports the first 100 errors and the count of all, each field cut at 200 characters', async () => {
    const long = 'x'.repeat(5000);
    // 4 MB of bad lines: a serial of 5,000 characters that is not a serial, and a label that is not key=value.
    const bad = Array.from({ length: 800 }, (_, i) => (i % 2 ? `-${long.slice(1)},AAAA,` : `GW-${i},AAAA,${long}`));
    const text = ['serial,public_key,labels', ...bad].join('\n') + '\n';
    expect(text.length).toBeGreaterThan(4_000_000);
    const r = await post(text);
    expect(r.status).toBe(422);
    expect(r.body.errorCount).toBe(800);
    expect(r.body.errors).toHaveLength(100);
    expect(r.body.errors.map((e: { line: number }) => e.line)).toEqual(Array.from({ length: 100 }, (_, i) => i + 2));
    expect(r.body.error.message).toMatch(/^line 2: .* \(and 799 more\); nothing was imported$/);
    for (const e of r.body.errors as { message: string }[]) {
      expect(e.message.length, e.message.slice(0, 80)).toBeLessThan(400);
      expect(e.message).toContain('… (5000 characters)');
    }
    expect(JSON.stringify(r.body).length).toBeLessThan(64 * 1024);
  });

  it('refuses a line longer than any record without keeping it, in CSV and JSON lines', async () => {
    const d = newDevice('SEC06-OK');
    const huge = `GW-HUGE,${'k'.repeat(2 * 1024 * 1024)},`;
    const r = await post(csvOf([d]) + huge + '\n');
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({ errorCount: 1, errors: [{ line: 3, message: 'line longer than 16384 characters: no record is that long' }] });
    const j = await post(`${JSON.stringify({ serial: 'GW-J', public_key: 'k'.repeat(100_000) })}\n`, 'application/x-ndjson');
    expect(j.body).toMatchObject({ errorCount: 1, errors: [{ line: 1, message: 'line longer than 16384 characters: no record is that long' }] });
    // Nothing was imported; the good file alone still is.
    expect((await call(cp.url, 'GET', '/v1/devices', { token: cp.adminToken })).body.devices).toEqual([]);
    expect((await post(csvOf([d]))).body).toEqual({ created: 1, updated: 0, unchanged: 0 });
  });
});
