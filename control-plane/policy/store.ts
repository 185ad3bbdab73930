import { asc, eq, sql } from 'drizzle-orm';
import { formatAllowance, parseAllowance, type Allowance } from '../../manifests/privileges.js';
import type { Reader } from '../campaigns/store.js';
import type { Tx } from '../context.js';
import { policies } from '../db/schema.js';
import { parseSelector, selectorCondition, type Selector } from '../selector.js';

const LABELS = sql`d.labels`;
import type { PolicyRule, TargetDevice } from './check.js';

type PolicyRow = typeof policies.$inferSelect;

export interface PolicyRecord {
  name: string;
  selector: string;
  allow: Allowance;
  createdAt: number;
  updatedAt: number;
  updatedBy: string;
}

function fromRow(r: PolicyRow): PolicyRecord {
  return { name: r.name, selector: r.selector, allow: JSON.parse(r.allow) as Allowance, createdAt: r.createdAt, updatedAt: r.updatedAt, updatedBy: r.updatedBy };
}

export async function loadPolicies(db: Reader): Promise<PolicyRecord[]> {
  return (await db.select().from(policies).orderBy(asc(policies.name))).map(fromRow);
}

export async function loadPolicy(db: Reader, name: string): Promise<PolicyRecord | null> {
  const [r] = await db.select().from(policies).where(eq(policies.name, name));
  return r ? fromRow(r) : null;
}

export async function savePolicy(tx: Tx, p: PolicyRecord): Promise<void> {
  const row = { ...p, allow: JSON.stringify(p.allow) };
  await tx.insert(policies).values(row).onConflictDoUpdate({ target: policies.name, set: { selector: row.selector, allow: row.allow, updatedAt: row.updatedAt, updatedBy: row.updatedBy } });
}

export async function deletePolicy(tx: Tx, name: string): Promise<void> {
  await tx.delete(policies).where(eq(policies.name, name));
}

/** Stored policies as rules; a stored entry that no longer parses grants nothing (and cannot be stored: set validates). */
export function rulesOf(list: PolicyRecord[]): PolicyRule[] {
  return list.map((p) => {
    const checked = parseAllowance(formatAllowance(p.allow));
    return { name: p.name, selector: parseSelector(p.selector), allow: 'allow' in checked ? checked.allow : {} };
  });
}

/** Devices a rollout to `selector` reaches: every device not revoked (a late enrollment joins too). */
export async function targetDevices(db: Reader, selector: Selector, onlyDevice?: string): Promise<TargetDevice[]> {
  const rows = await db.all<{ serial: string; labels: string }>(sql`SELECT d.serial, d.labels FROM devices d
    WHERE d.status <> 'revoked' AND ${selectorCondition(selector, LABELS)} ${onlyDevice === undefined ? sql`` : sql`AND d.id = ${onlyDevice}`}`);
  return rows.map((r) => ({ serial: r.serial, labels: JSON.parse(r.labels) as Record<string, string> }));
}

export async function countMatching(db: Reader, selector: Selector): Promise<number> {
  const [r] = await db.all<{ n: number }>(sql`SELECT count(*) AS n FROM devices d WHERE d.status <> 'revoked' AND ${selectorCondition(selector, LABELS)}`);
  return r?.n ?? 0;
}
