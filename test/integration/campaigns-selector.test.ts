import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, type Client } from '@libsql/client';
import { sql } from 'drizzle-orm';
import { drizzle, type LibSQLDatabase } from 'drizzle-orm/libsql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { matchesSelector, parseSelector, selectorCondition } from '../../control-plane/selector.js';

/**
 * Campaign membership is computed in SQL (set-based, for 100,000 devices) and, for one device at a
 * time, in TypeScript. Both must pick exactly the same devices; this checks them against each
 * other on a real libSQL file.
 */

const LABELS: Record<string, string>[] = [
  {},
  { site: 'berlin' },
  { site: 'berlin', tier: 'canary' },
  { site: 'munich', tier: 'prod', model: 'a' },
  { site: 'munich', model: 'c', beta: '' },
  { site: '', tier: 'prod' },
  { 'example.com/site': 'berlin', 'model.v2': 'b' },
  { site: 'Berlin', beta: 'yes' },
];

const SELECTORS = [
  '',
  'site=berlin',
  'site==berlin',
  'site!=berlin',
  'site=',
  'site!=',
  'tier in (canary,prod)',
  'tier notin (canary)',
  'beta',
  '!beta',
  'model in (a,b),!beta',
  'example.com/site=berlin',
  'model.v2 in (b)',
  'site in (berlin,munich),tier!=canary,model notin (c)',
];

let dir: string;
let client: Client;
let db: LibSQLDatabase;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-selector-sql-'));
  client = createClient({ url: `file:${join(dir, 'sel.db')}` });
  db = drizzle(client);
  await client.execute('CREATE TABLE devices (id TEXT PRIMARY KEY, labels TEXT NOT NULL)');
  for (const [i, labels] of LABELS.entries()) {
    await client.execute({ sql: 'INSERT INTO devices (id, labels) VALUES (?, ?)', args: [`d${i}`, JSON.stringify(labels)] });
  }
});

afterAll(async () => {
  client.close();
  await rm(dir, { recursive: true, force: true });
});

describe('selectorCondition', () => {
  it.each(SELECTORS)('picks the same devices as matchesSelector for %j', async (text) => {
    const selector = parseSelector(text);
    const rows = await db.all<{ id: string }>(sql`SELECT d.id AS id FROM devices d WHERE ${selectorCondition(selector, sql`d.labels`)} ORDER BY d.id`);
    const expected = LABELS.map((labels, i) => (matchesSelector(selector, labels) ? `d${i}` : null)).filter((x) => x !== null);
    expect(rows.map((r) => r.id)).toEqual(expected.sort());
  });
});
