/**
 * Secrets per device, selector or fleet, sealed with the vault key (issue 13); each device's X25519
 * encryption key. The JWEs snapshotted at assignment live in desired.config (0103, vars).
 */
export const deviceSecretsMigration = {
  id: '0104_device_secrets',
  sql: `
CREATE TABLE device_secrets (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  scope TEXT NOT NULL CHECK (scope IN ('device','selector','fleet')),
  target TEXT NOT NULL,
  version INTEGER NOT NULL,
  value TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  updated_by TEXT NOT NULL
);
CREATE UNIQUE INDEX device_secrets_scope ON device_secrets (name, scope, target);
ALTER TABLE devices ADD COLUMN encryption_key TEXT;`,
};
