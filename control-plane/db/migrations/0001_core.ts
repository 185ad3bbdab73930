/** The core tables; see ../schema.ts for what each column means. */
export const coreMigration = {
  id: '0001_core',
  sql: `
CREATE TABLE devices (
  id TEXT PRIMARY KEY,
  serial TEXT NOT NULL,
  public_key TEXT NOT NULL,
  labels TEXT NOT NULL DEFAULT '{}',
  status TEXT NOT NULL DEFAULT 'registered' CHECK (status IN ('registered','enrolled','revoked')),
  created_at INTEGER NOT NULL,
  enrolled_at INTEGER,
  last_seen_at INTEGER,
  token_epoch INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX devices_serial ON devices(serial);

CREATE TABLE manifests (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  version TEXT NOT NULL,
  digest TEXT NOT NULL,
  spec TEXT NOT NULL,
  source TEXT NOT NULL,
  published_at INTEGER NOT NULL,
  published_by TEXT NOT NULL
);
CREATE UNIQUE INDEX manifests_name_version ON manifests(name, version);

CREATE TABLE desired (
  device_id TEXT PRIMARY KEY REFERENCES devices(id),
  manifest_id TEXT NOT NULL REFERENCES manifests(id),
  sequence INTEGER NOT NULL,
  campaign_id TEXT,
  previous_manifest_id TEXT REFERENCES manifests(id),
  issued_at INTEGER NOT NULL
);
CREATE INDEX desired_manifest ON desired(manifest_id);
CREATE INDEX desired_campaign ON desired(campaign_id);

CREATE TABLE reported (
  device_id TEXT PRIMARY KEY REFERENCES devices(id),
  sequence INTEGER NOT NULL,
  desired_sequence INTEGER,
  running TEXT,
  phase TEXT NOT NULL,
  bytes_done REAL NOT NULL,
  bytes_total REAL NOT NULL,
  services TEXT NOT NULL,
  error TEXT,
  at TEXT NOT NULL,
  received_at INTEGER NOT NULL
);

CREATE TABLE report_history (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id TEXT NOT NULL REFERENCES devices(id),
  sequence INTEGER NOT NULL,
  desired_sequence INTEGER,
  running TEXT,
  phase TEXT NOT NULL,
  error TEXT,
  report TEXT NOT NULL,
  received_at INTEGER NOT NULL
);
CREATE INDEX report_history_device ON report_history(device_id, id);

CREATE TABLE operator_tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin','release-manager','viewer')),
  token_hash TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  expires_at INTEGER,
  revoked_at INTEGER
);
CREATE UNIQUE INDEX operator_tokens_hash ON operator_tokens(token_hash);

CREATE TABLE audit_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  before TEXT,
  after TEXT
);
CREATE INDEX audit_log_at ON audit_log(at);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE signing_keys (
  kid TEXT PRIMARY KEY,
  private_key TEXT NOT NULL,
  public_jwk TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  retired_at INTEGER
);

CREATE TABLE enroll_challenges (
  challenge TEXT PRIMARY KEY,
  serial TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER
);
CREATE INDEX enroll_challenges_expires ON enroll_challenges(expires_at);
`,
};
