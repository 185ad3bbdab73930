/** Privilege policies (issue 12); see ../schema.ts for what each column means. */
export const policiesMigration = {
  id: '0101_policies',
  sql: `
CREATE TABLE policies (
  name TEXT PRIMARY KEY,
  selector TEXT NOT NULL,
  allow TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  updated_by TEXT NOT NULL
);`,
};
