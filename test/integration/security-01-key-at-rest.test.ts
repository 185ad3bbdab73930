import { chmod, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { startControlPlane } from '../../control-plane/index.js';
import { migrate, openDatabase } from '../../control-plane/db/open.js';
import { generateEd25519 } from '../../protocol/keys.js';
import { capturedLog } from './security-support.js';

const silent = () => createLogger('control-plane', { level: 'silent' });
const modeOf = async (p: string) => (await stat(p)).mode & 0o777;

/** Every byte of every file in the data dir (db, -wal, -shm, key secret, admin.token). */
async function everyFile(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const name of await readdir(dir)) {
    // A side file (-shm) removed by a closing connection meanwhile holds nothing to find.
    const bytes = await readFile(join(dir, name)).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (bytes) out.set(name, bytes);
  }
  return out;
}

describe('finding 1: the signing key at rest and the modes of the data dir', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const tempDir = async () => {
    const d = await mkdtemp(join(tmpdir(), 'berth-sec01-'));
    dirs.push(d);
    return join(d, 'data');
  };

  it('creates the data dir 0700 and the database files 0600, and no db file holds the private key', async () => {
    const dir = await tempDir();
    const cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${join(dir, 'berth.db')}`, dataDir: dir, log: silent() });
    try {
      const pem = cp.ctx.keys.active().privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
      const der = cp.ctx.keys.active().privateKey.export({ format: 'der', type: 'pkcs8' });
      const seed = der.subarray(der.length - 32);
      expect(await modeOf(dir)).toBe(0o700);
      const files = await everyFile(dir);
      for (const name of ['berth.db', 'berth.db-wal', 'berth.db-shm', 'signing-key.secret', 'admin.token']) {
        expect(files.has(name), name).toBe(true);
        expect(await modeOf(join(dir, name)), name).toBe(0o600);
      }
      for (const name of ['berth.db', 'berth.db-wal', 'berth.db-shm']) {
        const bytes = files.get(name) as Buffer;
        expect(bytes.includes('PRIVATE KEY'), name).toBe(false);
        expect(bytes.includes(pem.split('\n')[1]), name).toBe(false);
        expect(bytes.includes(seed), name).toBe(false);
      }
    } finally {
      await cp.close();
    }
  });

  it('opens a database of the old layout: tightens the modes with a log line, seals the plaintext PEM and leaves no copy in the files', async () => {
    const dir = await tempDir();
    const db = join(dir, 'berth.db');
    // What the previous release left: a 0755 dir, 0644 files, the PEM in signing_keys.
    const old = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${db}`, dataDir: dir, log: silent() });
    await old.close();
    await rm(join(dir, 'signing-key.secret'));
    const pair = generateEd25519();
    const pem = pair.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
    {
      const { client } = await openDatabase(`file:${db}`);
      await migrate(client, silent());
      await client.execute('DELETE FROM signing_keys');
      await client.execute({ sql: 'INSERT INTO signing_keys (kid, private_key, public_jwk, created_at) VALUES (?, ?, ?, ?)', args: ['k-legacy', pem, JSON.stringify(pair.publicKey.export({ format: 'jwk' })), Date.now()] });
      client.close();
    }
    await chmod(dir, 0o755);
    // The closing connection may remove its -shm/-wal between readdir and chmod: nothing left to loosen then.
    const gone = (e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    };
    for (const name of await readdir(dir)) await chmod(join(dir, name), 0o644).catch(gone);
    expect((await everyFile(dir)).get('berth.db')?.includes(pem.split('\n')[1]) || (await everyFile(dir)).get('berth.db-wal')?.includes(pem.split('\n')[1])).toBe(true);

    const { log, lines } = capturedLog();
    const cp = await startControlPlane({ listen: '127.0.0.1:0', db: `file:${db}`, dataDir: dir, log });
    try {
      expect(await modeOf(dir)).toBe(0o700);
      for (const name of await readdir(dir)) expect(await modeOf(join(dir, name)), name).toBe(0o600);
      const tightened = lines.filter((l) => String(l.msg).startsWith('tightened the mode')).map((l) => l.path);
      expect(tightened).toEqual(expect.arrayContaining([dir, db]));
      expect(lines.some((l) => String(l.msg).includes('stored in plain text') && JSON.stringify(l.keys) === '["k-legacy"]')).toBe(true);
      for (const [name, bytes] of await everyFile(dir)) {
        expect(bytes.includes('PRIVATE KEY'), name).toBe(false);
        expect(bytes.includes(pem.split('\n')[1]), name).toBe(false);
      }
      // The same key still signs: nothing a device holds is invalidated by the move.
      expect(cp.ctx.keys.active().kid).toBe('k-legacy');
      const jwks = (await (await fetch(`${cp.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
      expect(jwks.keys.map((k) => k.kid)).toEqual(['k-legacy']);
      expect(JSON.stringify(lines)).not.toContain(pem.split('\n')[1]);
    } finally {
      await cp.close();
    }
  });
});
