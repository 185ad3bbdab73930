/** The campaign tables; see ../schema.ts for what each column means. */
export const campaignsMigration = {
  id: '0100_campaigns',
  sql: `
CREATE TABLE campaigns (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  manifest_id TEXT NOT NULL REFERENCES manifests(id),
  release TEXT NOT NULL,
  selector TEXT NOT NULL,
  spec TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('draft','running','paused','completed','failed','aborted')),
  current_wave INTEGER NOT NULL DEFAULT 0,
  soak_until INTEGER,
  failures_acknowledged_at INTEGER,
  next_window_at INTEGER,
  status_reason TEXT,
  created_at INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  started_at INTEGER,
  finished_at INTEGER,
  updated_at INTEGER NOT NULL
);
CREATE INDEX campaigns_status ON campaigns(status);
CREATE INDEX campaigns_created ON campaigns(created_at);

CREATE TABLE campaign_devices (
  campaign_id TEXT NOT NULL REFERENCES campaigns(id),
  device_id TEXT NOT NULL REFERENCES devices(id),
  wave INTEGER,
  state TEXT NOT NULL CHECK (state IN ('pending','assigned','succeeded','failed','rolled-back','left')),
  active INTEGER NOT NULL DEFAULT 0,
  late INTEGER NOT NULL DEFAULT 0,
  joined_at INTEGER NOT NULL,
  previous_manifest_id TEXT,
  desired_sequence INTEGER,
  assigned_at INTEGER,
  finished_at INTEGER,
  last_error TEXT,
  assigning INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (campaign_id, device_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX campaign_devices_one_active ON campaign_devices(device_id) WHERE active = 1;
CREATE INDEX campaign_devices_device ON campaign_devices(device_id);
CREATE INDEX campaign_devices_progress ON campaign_devices(campaign_id, state, wave);
CREATE INDEX campaign_devices_assigning ON campaign_devices(campaign_id) WHERE assigning = 1;
`,
};
