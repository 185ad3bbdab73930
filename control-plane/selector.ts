import { sql, type SQL } from 'drizzle-orm';
import { isLabelKey, isLabelValue } from '../common/grammar.js';

/**
 * Kubernetes label selectors: `site=berlin,tier!=canary,model in (a,b),model notin (c),beta,!beta`.
 * The grammar and the matching rules follow Kubernetes so operators can reuse what they know:
 * `!=` and `notin` also match a device that lacks the key; the empty selector matches every device.
 */

export type SelectorOperator = 'exists' | 'not-exists' | 'equals' | 'not-equals' | 'in' | 'notin';

export interface Requirement {
  key: string;
  operator: SelectorOperator;
  /** Sorted and deduplicated; empty for exists / not-exists, one value for (not-)equals. */
  values: string[];
}

export interface Selector {
  requirements: Requirement[];
}

export class SelectorError extends Error {
  constructor(
    readonly selector: string,
    /** 0-based offset into the selector text where parsing stopped. */
    readonly position: number,
    readonly expected: string,
  ) {
    const found = position >= selector.length ? 'end of selector' : `'${selector.slice(position, position + 12)}'`;
    super(`selector: at position ${position}: expected ${expected}, found ${found}`);
    this.name = 'SelectorError';
  }
}

const TOKEN_CHAR_RE = /[A-Za-z0-9_.\/-]/;

class Cursor {
  pos = 0;
  constructor(readonly text: string) {}

  skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos])) this.pos++;
  }

  peek(s: string): boolean {
    return this.text.startsWith(s, this.pos);
  }

  atEnd(): boolean {
    return this.pos >= this.text.length;
  }

  /** A run of label characters (possibly empty). */
  token(): string {
    const start = this.pos;
    while (this.pos < this.text.length && TOKEN_CHAR_RE.test(this.text[this.pos])) this.pos++;
    return this.text.slice(start, this.pos);
  }

  fail(expected: string, at = this.pos): never {
    throw new SelectorError(this.text, at, expected);
  }
}

function parseKey(c: Cursor): string {
  c.skipSpace();
  const at = c.pos;
  const key = c.token();
  if (key === '') c.fail('a label key');
  if (!isLabelKey(key)) c.fail('a valid label key ([prefix/]name, name of 1-63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric)', at);
  return key;
}

function parseValue(c: Cursor, allowEmpty: boolean): string {
  c.skipSpace();
  const at = c.pos;
  const value = c.token();
  if (value === '' && !allowEmpty) c.fail('a label value');
  if (!isLabelValue(value)) c.fail('a valid label value (at most 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric)', at);
  return value;
}

function parseValueSet(c: Cursor): string[] {
  c.skipSpace();
  if (!c.peek('(')) c.fail("'(' opening the value set");
  c.pos++;
  const values = new Set<string>();
  for (;;) {
    c.skipSpace();
    if (c.peek(')') && values.size === 0) c.fail('at least one value in the set');
    values.add(parseValue(c, false));
    c.skipSpace();
    if (c.peek(',')) {
      c.pos++;
      continue;
    }
    if (c.peek(')')) {
      c.pos++;
      return [...values].sort();
    }
    c.fail("',' or ')' in the value set");
  }
}

/** Reads `in` / `notin` as whole words so a key like `internal` is never taken for an operator. */
function peekWord(c: Cursor, word: string): boolean {
  if (!c.peek(word)) return false;
  const next = c.text[c.pos + word.length];
  return next === undefined || next === '(' || /\s/.test(next);
}

function parseRequirement(c: Cursor): Requirement {
  c.skipSpace();
  if (c.peek('!')) {
    c.pos++;
    return { key: parseKey(c), operator: 'not-exists', values: [] };
  }
  const key = parseKey(c);
  const afterKey = c.pos;
  c.skipSpace();
  if (c.atEnd() || c.peek(',')) return { key, operator: 'exists', values: [] };
  if (c.peek('==')) {
    c.pos += 2;
    return { key, operator: 'equals', values: [parseValue(c, true)] };
  }
  if (c.peek('!=')) {
    c.pos += 2;
    return { key, operator: 'not-equals', values: [parseValue(c, true)] };
  }
  if (c.peek('=')) {
    c.pos += 1;
    return { key, operator: 'equals', values: [parseValue(c, true)] };
  }
  // Operators that are words need whitespace after the key; `sitein (a)` is not `site in (a)`.
  if (c.pos > afterKey && peekWord(c, 'notin')) {
    c.pos += 'notin'.length;
    return { key, operator: 'notin', values: parseValueSet(c) };
  }
  if (c.pos > afterKey && peekWord(c, 'in')) {
    c.pos += 'in'.length;
    return { key, operator: 'in', values: parseValueSet(c) };
  }
  return c.fail("'=', '==', '!=', 'in', 'notin', ',' or end after the key");
}

export function parseSelector(text: string): Selector {
  const c = new Cursor(text);
  const requirements: Requirement[] = [];
  c.skipSpace();
  if (c.atEnd()) return { requirements };
  for (;;) {
    requirements.push(parseRequirement(c));
    c.skipSpace();
    if (c.atEnd()) return { requirements };
    if (!c.peek(',')) c.fail("',' or end of selector");
    c.pos++;
  }
}

export function matchesRequirement(req: Requirement, labels: Record<string, string>): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, req.key);
  const value = has ? labels[req.key] : undefined;
  switch (req.operator) {
    case 'exists':
      return has;
    case 'not-exists':
      return !has;
    case 'equals':
      return has && value === req.values[0];
    case 'not-equals':
      return !has || value !== req.values[0];
    case 'in':
      return has && req.values.includes(value as string);
    case 'notin':
      return !has || !req.values.includes(value as string);
  }
}

export function matchesSelector(selector: Selector, labels: Record<string, string>): boolean {
  return selector.requirements.every((r) => matchesRequirement(r, labels));
}

function formatRequirement(r: Requirement): string {
  switch (r.operator) {
    case 'exists':
      return r.key;
    case 'not-exists':
      return `!${r.key}`;
    case 'equals':
      return `${r.key}=${r.values[0]}`;
    case 'not-equals':
      return `${r.key}!=${r.values[0]}`;
    case 'in':
      return `${r.key} in (${r.values.join(',')})`;
    case 'notin':
      return `${r.key} notin (${r.values.join(',')})`;
  }
}

/** The canonical text of a selector: parseSelector(formatSelector(s)) equals s. */
export function formatSelector(selector: Selector): string {
  return selector.requirements.map(formatRequirement).join(',');
}

/**
 * The same matching rules as matchesSelector, as an SQL condition over a JSON labels column
 * (`labels`, e.g. sql`d.labels` or the drizzle column): lets SQLite pick devices without
 * loading them.
 */
export function selectorCondition(selector: Selector, labels: SQL): SQL {
  if (selector.requirements.length === 0) return sql`1`;
  return sql.join(
    selector.requirements.map((r) => requirementCondition(r, labels)),
    sql` AND `,
  );
}

function requirementCondition(r: Requirement, labels: SQL): SQL {
  // Keys never contain '"' (the parser refuses it), so a quoted JSON path names exactly one key.
  const path = `$."${r.key}"`;
  const present = sql`(json_type(${labels}, ${path}) IS NOT NULL)`;
  const value = sql`json_extract(${labels}, ${path})`;
  const values = sql.join(r.values.map((v) => sql`${v}`), sql`, `);
  switch (r.operator) {
    case 'exists':
      return present;
    case 'not-exists':
      return sql`(NOT ${present})`;
    case 'equals':
      return sql`(${present} AND ${value} = ${r.values[0]})`;
    case 'not-equals':
      return sql`(NOT ${present} OR ${value} <> ${r.values[0]})`;
    case 'in':
      return sql`(${present} AND ${value} IN (${values}))`;
    case 'notin':
      return sql`(NOT ${present} OR ${value} NOT IN (${values}))`;
  }
}
