/**
 * Issue 17: the campaign engine reads its counts every second (campaigns/store.ts loadCounts): the
 * members by wave and state, and the oldest assignment still in flight. With assigned_at in the
 * progress index both come from the index alone; before, each tick read every assigned, succeeded
 * and failed member's row (100,000 rows a second in the last wave of a 100,000-device campaign).
 * Same name, one more column: every query that used the index still can. See ../schema.ts.
 */
export const campaignProgressAssignedMigration = {
  id: '0114_campaign_progress_assigned',
  sql: `
DROP INDEX campaign_devices_progress;
CREATE INDEX campaign_devices_progress ON campaign_devices (campaign_id, state, wave, assigned_at);`,
};
