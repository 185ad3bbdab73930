/**
 * Shared-database mode (issue 17): the change feed of desired state (one row per device whose
 * desired document changed, written in the transaction of the change; every control plane tails
 * it by `seq` and wakes the long polls of exactly those devices) and named leases (one process
 * drives campaigns and the other singletons). AUTOINCREMENT: a seq is never reused after pruning,
 * so a tailer's `seq > last` never skips a row. Plain SQL: works the same on a libSQL server.
 */
export const desiredChangesMigration = {
  id: '0110_desired_changes',
  sql: `
CREATE TABLE desired_changes (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id TEXT NOT NULL,
  at INTEGER NOT NULL
);

CREATE TABLE leases (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  acquired_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
`,
};
