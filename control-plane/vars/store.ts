import { and, asc, eq, sql } from 'drizzle-orm';
import type { Reader } from '../campaigns/store.js';
import type { Tx } from '../context.js';
import { variables, type VariableScope } from '../db/schema.js';
import { parseSelector } from '../selector.js';
import type { VariableRule } from './resolve.js';

export type VariableRow = typeof variables.$inferSelect;

/** Every stored value as a rule; selectors were normalized when set, so they parse. */
export async function loadRules(db: Reader): Promise<VariableRule[]> {
  const rows = await db.select().from(variables).orderBy(asc(variables.name), asc(variables.scope), asc(variables.target));
  return rows.map((r) => ({ name: r.name, scope: r.scope, target: r.target, value: r.value, ...(r.scope === 'selector' ? { selector: parseSelector(r.target) } : {}) }));
}

export async function loadRows(db: Reader, filter: { scope?: VariableScope; target?: string } = {}): Promise<VariableRow[]> {
  const where = filter.scope ? (filter.target !== undefined ? and(eq(variables.scope, filter.scope), eq(variables.target, filter.target)) : eq(variables.scope, filter.scope)) : undefined;
  return db.select().from(variables).where(where).orderBy(asc(variables.name), asc(variables.scope), asc(variables.target));
}

export async function saveValue(tx: Tx, row: VariableRow): Promise<VariableRow | null> {
  const [before] = await tx.select().from(variables).where(and(eq(variables.name, row.name), eq(variables.scope, row.scope), eq(variables.target, row.target)));
  await tx
    .insert(variables)
    .values(row)
    .onConflictDoUpdate({ target: [variables.name, variables.scope, variables.target], set: { value: row.value, updatedAt: row.updatedAt, updatedBy: row.updatedBy } });
  return before ?? null;
}

export async function deleteValue(tx: Tx, name: string, scope: VariableScope, target: string): Promise<VariableRow | null> {
  const [gone] = await tx.delete(variables).where(and(eq(variables.name, name), eq(variables.scope, scope), eq(variables.target, target))).returning();
  return gone ?? null;
}

/** Serials of device-scoped targets, for showing them. */
export async function serialsById(db: Reader, ids: string[]): Promise<Map<string, string>> {
  if (!ids.length) return new Map();
  const rows = await db.all<{ id: string; serial: string }>(sql`SELECT id, serial FROM devices WHERE id IN (${sql.join(ids.map((i) => sql`${i}`), sql`, `)})`);
  return new Map(rows.map((r) => [r.id, r.serial]));
}
