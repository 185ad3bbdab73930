/**
 * What an update's layers weigh in full beside the bytes the device moved, and whether layer deltas
 * carried it (issue 11): the twin shows "1.6 MiB of 47 MiB (delta)", a campaign sums them. Null in
 * reports from daemons that do not say.
 */
export const reportedBytesFullMigration = {
  id: '0105_reported_bytes_full',
  sql: `ALTER TABLE reported ADD COLUMN bytes_full REAL;
ALTER TABLE reported ADD COLUMN bytes_delta INTEGER;`,
};
