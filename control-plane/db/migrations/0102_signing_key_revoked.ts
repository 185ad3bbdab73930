/** A revoked signing key: whatever it signed is refused at once (issue 14), unlike a retired one. */
export const signingKeyRevokedMigration = {
  id: '0102_signing_key_revoked',
  sql: `ALTER TABLE signing_keys ADD COLUMN revoked_at INTEGER;`,
};
