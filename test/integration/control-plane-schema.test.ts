import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@libsql/client';
import { is, SQL } from 'drizzle-orm';
import { getTableConfig, SQLiteSyncDialect, SQLiteTable } from 'drizzle-orm/sqlite-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../common/log.js';
import { migrate, openDatabase } from '../../control-plane/db/open.js';
import { migrations } from '../../control-plane/db/migrations/index.js';
import * as schema from '../../control-plane/db/schema.js';
import { startControlPlane } from '../../control-plane/index.js';
import { call } from './control-plane-support.js';

/**
 * One schema source: db/schema.ts declares the tables, db/migrations/ builds them. These tests
 * migrate real libSQL files and compare what SQLite reports with what schema.ts declares, so the
 * two cannot drift; and they open databases built the way older releases built them.
 */

const log = createLogger('schema-test', { level: 'silent' });
const here = dirname(fileURLToPath(import.meta.url));

interface ColumnShape {
  type: string;
  notNull: boolean;
  default: string | null;
  pk: number;
  autoIncrement: boolean;
  enum: string[] | null;
}
interface TableShape {
  columns: Record<string, ColumnShape>;
  indexes: Record<string, { unique: boolean; columns: string[]; where: string | null }>;
  foreignKeys: string[];
  withoutRowid: boolean;
}
interface SchemaShape {
  tables: Record<string, TableShape>;
  triggers: string[];
}

const squash = (s: string) => s.replace(/["`]/g, '').replace(/\s+/g, ' ').trim().toLowerCase();
const dialect = new SQLiteSyncDialect();

/** What schema.ts declares, in the shape SQLite reports. */
function declaredShape(): SchemaShape {
  const tables: Record<string, TableShape> = {};
  for (const value of Object.values(schema)) {
    if (!is(value, SQLiteTable)) continue;
    const t = getTableConfig(value);
    const composite = t.primaryKeys[0]?.columns.map((c) => c.name) ?? [];
    const columns: Record<string, ColumnShape> = {};
    for (const c of t.columns) {
      const pk = c.primary ? 1 : composite.indexOf(c.name) + 1;
      const d: unknown = c.default;
      columns[c.name] = {
        type: c.getSQLType().toUpperCase(),
        // SQLite reports a primary-key column's NOT NULL only when spelled out; both sides treat it as not null.
        notNull: c.notNull || pk > 0,
        default: d === undefined ? null : is(d, SQL) ? squash(dialect.sqlToQuery(d).sql) : typeof d === 'string' ? `'${d}'` : String(d),
        pk,
        autoIncrement: 'autoIncrement' in c && c.autoIncrement === true,
        enum: c.enumValues?.length ? [...c.enumValues].sort() : null,
      };
    }
    const indexes: TableShape['indexes'] = {};
    for (const i of t.indexes) {
      indexes[i.config.name] = {
        unique: i.config.unique,
        columns: i.config.columns.map((c) => (is(c, SQL) ? squash(dialect.sqlToQuery(c).sql) : c.name)),
        where: i.config.where ? squash(dialect.sqlToQuery(i.config.where).sql) : null,
      };
    }
    const foreignKeys = t.foreignKeys
      .map((fk) => {
        const r = fk.reference();
        return `${r.columns.map((c) => c.name).join(',')} -> ${getTableConfig(r.foreignTable).name}(${r.foreignColumns.map((c) => c.name).join(',')})`;
      })
      .sort();
    tables[t.name] = { columns, indexes, foreignKeys, withoutRowid: schema.sqlOnly.withoutRowid.includes(t.name) };
  }
  return { tables, triggers: [...schema.sqlOnly.triggers].sort() };
}

/** What SQLite says the database holds (bookkeeping tables left out). */
async function databaseShape(client: Client): Promise<SchemaShape> {
  const rows = async <T>(sql: string, args: string[] = []) => (await client.execute({ sql, args })).rows as unknown as T[];
  const tables: Record<string, TableShape> = {};
  const tableRows = await rows<{ name: string; sql: string }>("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'");
  for (const { name, sql } of tableRows) {
    // Enum checks are written `col TEXT ... CHECK (col IN ('a','b'))`; SQLite keeps only the text.
    const checks = new Map<string, string[]>();
    for (const m of sql.matchAll(/CHECK\s*\(\s*(\w+)\s+IN\s*\(([^)]*)\)\s*\)/gi)) {
      checks.set(m[1], m[2].split(',').map((v) => v.trim().replace(/^'|'$/g, '')).sort());
    }
    const columns: Record<string, ColumnShape> = {};
    for (const c of await rows<{ name: string; type: string; notnull: number; dflt_value: string | null; pk: number }>(`PRAGMA table_info(${JSON.stringify(name)})`)) {
      columns[c.name] = {
        type: c.type.toUpperCase(),
        notNull: Number(c.notnull) === 1 || Number(c.pk) > 0,
        default: c.dflt_value,
        pk: Number(c.pk),
        autoIncrement: new RegExp(`\\b${c.name}\\s+INTEGER\\s+PRIMARY\\s+KEY\\s+AUTOINCREMENT`, 'i').test(sql),
        enum: checks.get(c.name) ?? null,
      };
    }
    const indexes: TableShape['indexes'] = {};
    for (const i of await rows<{ name: string; sql: string }>("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", [name])) {
      const where = /\bWHERE\b(.*)$/is.exec(i.sql);
      indexes[i.name] = {
        unique: /^\s*CREATE\s+UNIQUE\b/i.test(i.sql),
        columns: (await rows<{ name: string }>(`PRAGMA index_info(${JSON.stringify(i.name)})`)).map((c) => c.name),
        where: where ? squash(where[1]) : null,
      };
    }
    const fks = await rows<{ id: number; seq: number; table: string; from: string; to: string }>(`PRAGMA foreign_key_list(${JSON.stringify(name)})`);
    const byId = new Map<number, typeof fks>();
    for (const f of fks) byId.set(Number(f.id), [...(byId.get(Number(f.id)) ?? []), f]);
    const foreignKeys = [...byId.values()]
      .map((parts) => {
        parts.sort((a, b) => Number(a.seq) - Number(b.seq));
        return `${parts.map((p) => p.from).join(',')} -> ${parts[0].table}(${parts.map((p) => p.to).join(',')})`;
      })
      .sort();
    tables[name] = { columns, indexes, foreignKeys, withoutRowid: /WITHOUT\s+ROWID\s*$/i.test(sql) };
  }
  const triggers = (await rows<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name")).map((r) => r.name);
  return { tables, triggers };
}

async function appliedIds(client: Client): Promise<string[]> {
  return (await client.execute('SELECT id FROM schema_migrations ORDER BY id')).rows.map((r) => String(r.id));
}

/**
 * What each shipped migration's SQL hashes to: a migration a database may already have applied must
 * never change (a new one goes at the end). The first three are byte for byte what the release
 * before issue 10 applied (commit 5b8f82e), so building with them rebuilds that release's databases.
 */
const SHIPPED: Record<string, string> = {
  '0001_core': '908ffeffb864e41726f80af83170ac5f4da07d6b631b2c77549dfbb923df4146',
  '0002_desired_issued_at': '643c2bd51c8b461c60800905198efd05cf633606eefa5c085c26357ef52e5cbe',
  '0100_campaigns': '3cca62de682ee0ade962e16ad21f10d410815a215a5544a388a91525ea075cec',
  '0102_signing_key_revoked': 'a61135f0045375228f1f1e5da3acf07837d26659e781d4d36731a280516e1178',
};

/** The order the release before issue 10 applied its migrations in (campaigns then lived in campaigns/migration.ts). */
const LEGACY_ORDER = ['0001_core', '0100_campaigns', '0002_desired_issued_at'];
/** What came after that release, in order. */
const SINCE_LEGACY = migrations.map((m) => m.id).filter((id) => !LEGACY_ORDER.includes(id));

/** Builds a database the way the control plane did before issue 10: its SQL, its order, its ids. */
async function legacyDatabase(url: string, upTo = LEGACY_ORDER.length): Promise<Client> {
  const { client } = await openDatabase(url);
  await client.execute('CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)');
  for (const id of LEGACY_ORDER.slice(0, upTo)) {
    const m = migrations.find((x) => x.id === id);
    if (!m) throw new Error(`migration ${id} is gone`);
    await client.executeMultiple(m.sql);
    await client.execute({ sql: 'INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)', args: [m.id, Date.now()] });
  }
  return client;
}

describe('control-plane database schema', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-schema-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps every migration in db/migrations/, named by its id, applied in ascending order', async () => {
    const ids = migrations.map((m) => m.id);
    expect(ids).toEqual([...ids].sort());
    expect(new Set(ids).size).toBe(ids.length);
    const files = (await readdir(join(here, '../../control-plane/db/migrations'))).filter((f) => /^\d{4}_.*\.ts$/.test(f)).map((f) => f.replace(/\.ts$/, ''));
    expect(files.sort()).toEqual(ids);
  });

  it('never changes a shipped migration', () => {
    const shipped = migrations.filter((m) => m.id in SHIPPED).map((m) => [m.id, createHash('sha256').update(m.sql).digest('hex')]);
    expect(Object.fromEntries(shipped)).toEqual(SHIPPED);
  });

  it('builds exactly what schema.ts declares', async () => {
    const { client } = await openDatabase(`file:${join(dir, 'fresh.db')}`);
    try {
      expect(await migrate(client, log)).toEqual(migrations.map((m) => m.id));
      const declared = declaredShape();
      // The comparison covers every table the code uses, campaigns included.
      expect(Object.keys(declared.tables).sort()).toEqual(['audit_log', 'campaign_devices', 'campaigns', 'desired', 'desired_changes', 'device_presence', 'device_secrets', 'device_sightings', 'devices', 'leases', 'manifests', 'operator_tokens', 'policies', 'removed_devices', 'report_history', 'reported', 'signing_keys', 'variables', 'webhook_deliveries', 'webhook_events', 'webhooks']);
      expect(await databaseShape(client)).toEqual(declared);
    } finally {
      client.close();
    }
  });

  it('notices drift: a column, an index or a check the declaration lacks fails the comparison', async () => {
    const { client } = await openDatabase(`file:${join(dir, 'drift.db')}`);
    try {
      await migrate(client, log);
      const declared = declaredShape();
      await client.execute('ALTER TABLE devices ADD COLUMN firmware TEXT');
      expect(await databaseShape(client)).not.toEqual(declared);
      await client.execute('ALTER TABLE devices DROP COLUMN firmware');
      expect(await databaseShape(client)).toEqual(declared);
      await client.execute('CREATE INDEX devices_created ON devices(created_at)');
      expect(await databaseShape(client)).not.toEqual(declared);
      await client.execute('DROP INDEX devices_created');
      await client.execute('DROP INDEX campaign_devices_one_active');
      await client.execute('CREATE UNIQUE INDEX campaign_devices_one_active ON campaign_devices(device_id) WHERE active = 2');
      expect(await databaseShape(client)).not.toEqual(declared);
      const withoutCheck = (await client.execute("SELECT sql FROM sqlite_master WHERE name = 'operator_tokens'")).rows[0].sql as string;
      expect(withoutCheck).toMatch(/CHECK \(role IN/);
    } finally {
      client.close();
    }
  });

  it('opens a database built by the previous release (0001, 0100, 0002) and leaves it as schema.ts declares', async () => {
    const url = `file:${join(dir, 'legacy.db')}`;
    const old = await legacyDatabase(url);
    const now = Date.now();
    await old.execute({ sql: "INSERT INTO devices (id, serial, public_key, labels, status, created_at, last_seen_at) VALUES ('dev_old', 'OLD-1', 'pk', '{\"site\":\"berlin\"}', 'enrolled', ?, ?)", args: [now, now - 1000] });
    await old.execute({ sql: "INSERT INTO devices (id, serial, public_key, labels, status, created_at) VALUES ('dev_unseen', 'OLD-2', 'pk2', '{}', 'registered', ?)", args: [now] });
    await old.execute({ sql: "INSERT INTO manifests (id, name, version, digest, spec, source, published_at, published_by) VALUES ('man_old', 'app', '1.0.0', 'sha256:00', '{}', 'x', ?, 'operator:x')", args: [now] });
    // The spec as that release wrote it (campaigns/spec.ts at 5b8f82e).
    const spec = { release: 'app@1.0.0', selector: 'site=berlin', waves: [{ kind: 'count', count: 1 }, { kind: 'percent', percent: 100 }], success: 1, maxFailures: 0, deviceTimeoutMs: 1_800_000, soakMs: 0, window: null, onFailure: 'pause' };
    await old.execute({ sql: "INSERT INTO campaigns (id, name, manifest_id, release, selector, spec, status, created_at, created_by, updated_at) VALUES ('cmp_old', 'old', 'man_old', 'app@1.0.0', 'site=berlin', ?, 'completed', ?, 'operator:x', ?)", args: [JSON.stringify(spec), now, now] });
    const before = await databaseShape(old);
    old.close();

    const { client } = await openDatabase(url);
    try {
      // Only what came after that release is applied.
      expect(await migrate(client, log)).toEqual(SINCE_LEGACY);
      expect(await appliedIds(client)).toEqual(['0001_core', '0002_desired_issued_at', '0100_campaigns', ...SINCE_LEGACY]);
      const after = await databaseShape(client);
      // Tables that release had are unchanged, but for signing_keys.revoked_at (0102), desired.config (0103), devices.encryption_key (0104) and reported.bytes_full, bytes_delta (0105).
      const changed = ['signing_keys', 'desired', 'devices', 'reported'];
      const without = (x: SchemaShape) => ({ ...x, tables: Object.fromEntries(Object.entries(x.tables).filter(([name]) => !changed.includes(name) && name in before.tables)) });
      // 0114 gave campaign_devices_progress one more column; the rest of that table is as it was.
      const progress = before.tables.campaign_devices.indexes.campaign_devices_progress;
      expect(after.tables.campaign_devices.indexes.campaign_devices_progress).toEqual({ ...progress, columns: [...progress.columns, 'assigned_at'] });
      before.tables.campaign_devices.indexes.campaign_devices_progress = after.tables.campaign_devices.indexes.campaign_devices_progress;
      // 0116 counts a campaign's wave assignments; the rest of campaigns is as it was.
      expect(after.tables.campaigns.columns.assignments).toMatchObject({ type: 'INTEGER', notNull: true, default: '0' });
      expect((await client.execute("SELECT assignments FROM campaigns WHERE id = 'cmp_old'")).rows[0].assignments).toBe(0);
      before.tables.campaigns.columns.assignments = after.tables.campaigns.columns.assignments;
      // 0117 dropped enroll_challenges (challenges carry their issue time under a MAC since 0115).
      expect(Object.keys(before.tables)).toContain('enroll_challenges');
      expect(Object.keys(after.tables)).not.toContain('enroll_challenges');
      delete before.tables.enroll_challenges;
      // 0118 moved sightings to device_sightings, keeping each device's (none for one never seen).
      expect(before.tables.devices.columns).toHaveProperty('last_seen_at');
      expect(after.tables.devices.columns).not.toHaveProperty('last_seen_at');
      expect((await client.execute('SELECT device_id, last_seen_at FROM device_sightings')).rows.map((row) => ({ ...row }))).toEqual([{ device_id: 'dev_old', last_seen_at: now - 1000 }]);
      expect(without(after)).toEqual(without(before));
      expect(after).toEqual(declaredShape());
    } finally {
      client.close();
    }

    // And the service itself starts on it and serves the old rows.
    const cp = await startControlPlane({ listen: '127.0.0.1:0', db: url, dataDir: dir, registryProxy: null, log });
    try {
      const list = await call(cp.url, 'GET', '/v1/devices', { token: cp.adminToken });
      expect(list.status).toBe(200);
      expect(list.body.devices.map((d: { serial: string; lastSeenAt: string | null }) => [d.serial, d.lastSeenAt])).toEqual([
        ['OLD-1', new Date(now - 1000).toISOString()],
        ['OLD-2', null],
      ]);
      const campaigns = await call(cp.url, 'GET', '/v1/campaigns', { token: cp.adminToken });
      expect(campaigns.status).toBe(200);
      expect(campaigns.body.campaigns.map((c: { id: string; selector: string }) => [c.id, c.selector])).toEqual([['cmp_old', 'site=berlin']]);
      const status = await call(cp.url, 'GET', '/v1/campaigns/cmp_old', { token: cp.adminToken });
      expect(status.status).toBe(200);
      expect(status.body).toMatchObject({ id: 'cmp_old', status: 'completed' });
    } finally {
      await cp.close();
    }
  });

  it('brings a database from before 0002 existed (0001, 0100) up to date', async () => {
    const url = `file:${join(dir, 'older.db')}`;
    (await legacyDatabase(url, 2)).close();
    const { client } = await openDatabase(url);
    try {
      expect(await migrate(client, log)).toEqual(['0002_desired_issued_at', ...SINCE_LEGACY]);
      expect(await databaseShape(client)).toEqual(declaredShape());
    } finally {
      client.close();
    }
  });

  it('keeps every announced presence when 0119 rebuilds device_presence without a rowid', async () => {
    const { client } = await openDatabase(`file:${join(dir, 'presence.db')}`);
    try {
      const upTo = migrations.findIndex((m) => m.id === '0119_device_presence_without_rowid');
      await migrate(client, log, migrations.slice(0, upTo));
      for (const [id, online] of [['dev_a', 1], ['dev_b', 0]] as const) {
        await client.execute({ sql: "INSERT INTO devices (id, serial, public_key, labels, status, created_at, token_epoch) VALUES (?, ?, 'pk', '{}', 'enrolled', 1, 0)", args: [id, `S-${id}`] });
        await client.execute({ sql: 'INSERT INTO device_presence (device_id, online, changed_at) VALUES (?, ?, ?)', args: [id, online, 1000 + online] });
      }
      expect(await migrate(client, log)).toEqual(migrations.slice(upTo).map((m) => m.id));
      const kept = await client.execute('SELECT device_id, online, changed_at FROM device_presence ORDER BY device_id');
      expect(kept.rows.map((row) => ({ ...row }))).toEqual([
        { device_id: 'dev_a', online: 1, changed_at: 1001 },
        { device_id: 'dev_b', online: 0, changed_at: 1000 },
      ]);
      expect(await databaseShape(client)).toEqual(declaredShape());
    } finally {
      client.close();
    }
  });
});
