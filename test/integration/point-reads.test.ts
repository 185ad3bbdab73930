import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { migrate, openDatabase } from '../../control-plane/db/open.js';
import { clientPointReads, openPointReads, type PointReads } from '../../control-plane/db/point-reads.js';

/**
 * The prepared reads of every device request (db/point-reads.ts) on a real libSQL file: the ones
 * on their own connection answer exactly as the same SQL through the client (what a server
 * database and an in-memory one use), and the poll's combined read is the two reads it replaces.
 */
describe('point reads', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-point-reads-'));
  const url = `file:${join(dir, 'berth.db')}`;
  let close: () => void = () => {};
  let ways: [string, PointReads][] = [];
  let exec: (sql: string, args?: (string | number | null)[]) => Promise<unknown>;

  beforeAll(async () => {
    const { client } = await openDatabase(url);
    await migrate(client, createLogger('control-plane', { level: 'silent' }));
    exec = (sql, args = []) => client.execute({ sql, args });
    const prepared = openPointReads(url, client);
    ways = [
      ['prepared', prepared],
      ['client', clientPointReads(client)],
    ];
    close = () => {
      prepared.close();
      client.close();
    };
    const device = "INSERT INTO devices (id, serial, public_key, labels, status, created_at, token_epoch) VALUES (?, ?, 'pk', '{}', ?, 1, ?)";
    await exec(device, ['dev-a', 'S-A', 'enrolled', 3]);
    await exec(device, ['dev-b', 'S-B', 'revoked', 0]);
    await exec("INSERT INTO manifests (id, name, version, digest, spec, source, published_at, published_by) VALUES ('m1', 'app', '1.0.0', 'sha256:m1', '{}', '', 1, 't')");
    await exec("INSERT INTO desired (device_id, manifest_id, sequence, campaign_id, issued_at, config) VALUES ('dev-a', 'm1', 7, 'cmp-1', 1, '{\"vars\":{\"A\":\"1\"}}')");
  });

  afterAll(() => {
    close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads a device and its desired sequence in one statement, as the two reads do', async () => {
    for (const [way, reads] of ways) {
      for (const id of ['dev-a', 'dev-b', 'dev-none']) {
        expect({ way, id, read: await reads.deviceAndSequence(id) }).toEqual({ way, id, read: { device: await reads.device(id), sequence: await reads.desiredSequence(id) } });
      }
      expect(await reads.deviceAndSequence('dev-a')).toEqual({ device: { id: 'dev-a', serial: 'S-A', status: 'enrolled', tokenEpoch: 3 }, sequence: 7 });
      expect(await reads.deviceAndSequence('dev-b')).toEqual({ device: { id: 'dev-b', serial: 'S-B', status: 'revoked', tokenEpoch: 0 }, sequence: null });
      expect(await reads.deviceAndSequence('dev-none')).toEqual({ device: undefined, sequence: null });
    }
  });

  it('reads the desired row a document is signed from, and sees a commit made after its last read', async () => {
    for (const [, reads] of ways) {
      expect(await reads.desiredDocument('dev-a')).toEqual({ sequence: 7, campaignId: 'cmp-1', config: '{"vars":{"A":"1"}}', manifestId: 'm1' });
      expect(await reads.desiredDocument('dev-b')).toBeUndefined();
    }
    await exec("UPDATE desired SET sequence = 8, campaign_id = NULL, config = NULL WHERE device_id = 'dev-a'");
    for (const [, reads] of ways) {
      expect(await reads.desiredDocument('dev-a')).toEqual({ sequence: 8, campaignId: null, config: null, manifestId: 'm1' });
      expect((await reads.deviceAndSequence('dev-a')).sequence).toBe(8);
    }
  });
});
