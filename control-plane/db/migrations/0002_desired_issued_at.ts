/** Lets the desired-state watcher find recent assignments (made by any process) with an index range scan. */
export const desiredIssuedMigration = {
  id: '0002_desired_issued_at',
  sql: `CREATE INDEX desired_issued_at ON desired(issued_at);`,
};
