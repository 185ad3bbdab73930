import { SQL, type Query } from 'drizzle-orm';

/**
 * A statement with its text and arguments made by hand, for drizzle's `tx.run`/`tx.all` (issue 17).
 * Through drizzle's `sql` template every row of a multi-row statement is a fragment and every value
 * a chunk that drizzle walks and checks when it builds the query: 42 µs for a 12-row UPDATE against
 * 0.3 µs this way (enroll's node micro-benchmark, 2026-11-30), and in fleet-sim 20,000 the writer
 * process spent 11 % of its busy time building the report batches' statements. Callers make the
 * same text drizzle made (the same placeholders in the same order), so the writer connection's kept
 * statements (writer.ts) serve it as before.
 */
export class Statement extends SQL {
  constructor(
    private readonly text: string,
    private readonly args: unknown[],
  ) {
    super([]);
  }

  override toQuery(): Query {
    return { sql: this.text, params: this.args };
  }
}

/** `row` (a parenthesised list of placeholders) `n` times, comma-separated. */
export const placeholderRows = (row: string, n: number): string => `${row}, `.repeat(n - 1) + row;
