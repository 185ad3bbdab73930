/** Variables per device, selector or fleet, and the per-device snapshot on the desired row (issue 13); see ../schema.ts. */
export const variablesMigration = {
  id: '0103_variables',
  sql: `
CREATE TABLE variables (
  name TEXT NOT NULL,
  scope TEXT NOT NULL CHECK (scope IN ('device', 'selector', 'fleet')),
  target TEXT NOT NULL,
  value TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  updated_by TEXT NOT NULL,
  PRIMARY KEY (name, scope, target)
) WITHOUT ROWID;
CREATE INDEX variables_scope ON variables (scope, target);
ALTER TABLE desired ADD COLUMN config TEXT;
ALTER TABLE desired ADD COLUMN previous_config TEXT;`,
};
