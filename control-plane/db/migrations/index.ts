import { coreMigration } from './0001_core.js';
import { desiredIssuedMigration } from './0002_desired_issued_at.js';
import { campaignsMigration } from './0100_campaigns.js';
import { policiesMigration } from './0101_policies.js';
import { signingKeyRevokedMigration } from './0102_signing_key_revoked.js';
import { variablesMigration } from './0103_variables.js';
import { deviceSecretsMigration } from './0104_device_secrets.js';
import { reportedBytesFullMigration } from './0105_reported_bytes_full.js';
import { webhooksMigration } from './0107_webhooks.js';
import { desiredChangesMigration } from './0110_desired_changes.js';
import { removedDevicesMigration } from './0113_removed_devices.js';
import { campaignProgressAssignedMigration } from './0114_campaign_progress_assigned.js';
import { enrollChallengeAtMigration } from './0115_enroll_challenge_at.js';
import { campaignAssignmentsMigration } from './0116_campaign_assignments.js';
import { dropEnrollChallengesMigration } from './0117_drop_enroll_challenges.js';
import { deviceSightingsMigration } from './0118_device_sightings.js';
import { devicePresenceWithoutRowidMigration } from './0119_device_presence_without_rowid.js';

export interface Migration {
  /** Never renamed: the id is what schema_migrations remembers. The file is named after it. */
  id: string;
  sql: string;
}

/**
 * Applied in this order (ascending ids), each once, each in its own transaction. A new migration
 * takes the next id after the last one (0101_…) and goes at the end; ../schema.ts changes with it.
 * Before issue 10 the campaign tables lived outside this folder and the list ran 0001, 0100, 0002;
 * 0002 and 0100 touch different tables, so databases migrated either way have the same schema
 * (control-plane-schema.test.ts migrates one the old way and compares).
 */
export const migrations: Migration[] = [coreMigration, desiredIssuedMigration, campaignsMigration, policiesMigration, signingKeyRevokedMigration, variablesMigration, deviceSecretsMigration, reportedBytesFullMigration, webhooksMigration, desiredChangesMigration, removedDevicesMigration, campaignProgressAssignedMigration, enrollChallengeAtMigration, campaignAssignmentsMigration, dropEnrollChallengesMigration, deviceSightingsMigration, devicePresenceWithoutRowidMigration];
