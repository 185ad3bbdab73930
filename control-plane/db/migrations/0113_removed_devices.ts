/**
 * Devices removed with `DELETE /v1/devices/:serial` (issue 16). The device's rows are gone; this
 * tombstone keeps its id on the registry proxy's revocation list for as long as a pull token it
 * held may live, so removing a revoked device never brings its tokens back. See ../schema.ts.
 */
export const removedDevicesMigration = {
  id: '0113_removed_devices',
  sql: `
CREATE TABLE removed_devices (
  device_id TEXT PRIMARY KEY,
  serial TEXT NOT NULL,
  removed_at INTEGER NOT NULL,
  removed_by TEXT NOT NULL
);
CREATE INDEX removed_devices_at ON removed_devices (removed_at);`,
};
