/**
 * Sightings leave the wide `devices` row for a narrow table of their own (issue 17): the
 * last-seen flush rewrote ~2,000 scattered `devices` rows per write, and at 100,000 held long
 * polls those writes held the cluster's write turn for seconds. Existing sightings are kept. The
 * column is dropped so nothing reads a value that no longer moves. See ../schema.ts.
 */
export const deviceSightingsMigration = {
  id: '0118_device_sightings',
  sql: `CREATE TABLE device_sightings (
  device_id TEXT PRIMARY KEY NOT NULL REFERENCES devices(id),
  last_seen_at INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO device_sightings (device_id, last_seen_at) SELECT id, last_seen_at FROM devices WHERE last_seen_at IS NOT NULL;
ALTER TABLE devices DROP COLUMN last_seen_at;`,
};
