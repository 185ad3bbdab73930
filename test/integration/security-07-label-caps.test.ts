import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningControlPlane } from '../../control-plane/index.js';
import { startSecurityPlane, stopSecurityPlane } from './security-support.js';
import { MAX_AUDIT_FIELD_BYTES } from '../../control-plane/context.js';
import { call, csvOf, newDevice } from './control-plane-support.js';

/** `n` labels whose keys (prefix/name) and values are as long as allowed. */
function longLabels(n: number, from = 0): Record<string, string> {
  const prefix = `${'p'.repeat(63)}.${'q'.repeat(63)}.${'r'.repeat(63)}.example.com`;
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}/${'n'.repeat(58)}${String(from + i).padStart(5, '0')}`, 'v'.repeat(63)]));
}

/**
 * Finding 7: one import put 1,000,000 labels on a device; the device list then answered 22 MB and
 * the audit log kept a 22 MB entry. Now at most 64 labels per device (keys and values already
 * have Kubernetes' lengths), by import or by edits, and one side of an audit entry keeps 16 KiB.
 */
describe('finding 7: labels and audit entries have limits', () => {
  let dir: string;
  let cp: RunningControlPlane;

  beforeAll(async () => {
    ({ dir, cp } = await startSecurityPlane('sec07'));
  });
  afterAll(() => stopSecurityPlane(cp, dir));

  it('refuses a 65th label on import, in CSV and JSON lines, naming the count', async () => {
    const d = newDevice('SEC07-A');
    const labels = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`l${i}`, 'x']));
    const csv = await call(cp.url, 'POST', '/v1/devices/import', { token: cp.adminToken, text: csvOf([d], () => Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(';')), type: 'text/csv' });
    expect(csv.status).toBe(422);
    expect(csv.body.errors).toEqual([{ line: 2, message: 'labels: 65 labels, a device has at most 64' }]);
    const jsonl = await call(cp.url, 'POST', '/v1/devices/import', { token: cp.adminToken, text: JSON.stringify({ serial: d.serial, public_key: d.publicKey, labels }) + '\n', type: 'application/x-ndjson' });
    expect(jsonl.status).toBe(422);
    expect(jsonl.body.errors).toEqual([{ line: 1, message: 'labels: 65 labels, a device has at most 64' }]);
    delete labels.l64;
    expect((await call(cp.url, 'POST', '/v1/devices/import', { token: cp.adminToken, text: csvOf([d], () => Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(';')), type: 'text/csv' })).status).toBe(200);
  });

  it('refuses edits that take a device past 64 labels, and keeps audit entries small', async () => {
    const d = newDevice('SEC07-B');
    expect((await call(cp.url, 'POST', '/v1/devices/import', { token: cp.adminToken, text: csvOf([d]), type: 'text/csv' })).status).toBe(200);
    const patch = (json: unknown) => call(cp.url, 'PATCH', `/v1/devices/${d.serial}/labels`, { token: cp.adminToken, json });
    const many = await patch({ set: longLabels(65) });
    expect(many.status).toBe(400);
    expect(many.body.error.message).toContain('65 labels, a device has at most 64');
    const full = await patch({ set: longLabels(64) });
    expect(full.status).toBe(200);
    expect(Object.keys(full.body.labels)).toHaveLength(64);
    const more = await patch({ set: longLabels(1, 64) });
    expect(more.status).toBe(422);
    expect(more.body.error).toEqual({ code: 'too-many-labels', message: `${d.serial}: 65 labels, a device has at most 64`, field: 'set' });
    // Replacing and removing at the cap still works.
    expect((await patch({ set: longLabels(1, 64), remove: Object.keys(longLabels(1)) })).status).toBe(200);

    // 64 labels as long as allowed are about 21 KiB of JSON: the audit entry keeps the start and the size.
    const audit = await call(cp.url, 'GET', '/v1/audit', { token: cp.adminToken });
    const entry = (audit.body.entries as { action: string; target: string; after: any }[]).find((e) => e.action === 'device.labels' && e.target === d.serial);
    expect(entry?.after).toMatchObject({ truncated: true });
    expect(entry?.after.bytes).toBeGreaterThan(MAX_AUDIT_FIELD_BYTES);
    expect(JSON.stringify(entry?.after).length).toBeLessThan(MAX_AUDIT_FIELD_BYTES);
  });
});
