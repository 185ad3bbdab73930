/**
 * Issue 17: how many wave assignments a campaign has made, bumped in the assignment's transaction.
 * Members become `assigned` only there, and one may already have a report matching its document
 * (its release and sequence unchanged), so the campaign tick's reconcile (campaigns/reconcile.ts)
 * and the status's byte totals (campaigns/bytes.ts) read every member again when it moves, and
 * otherwise only the devices that reported since. A counter, not updated_at: clocks repeat. See ../schema.ts.
 */
export const campaignAssignmentsMigration = {
  id: '0116_campaign_assignments',
  sql: `ALTER TABLE campaigns ADD COLUMN assignments INTEGER NOT NULL DEFAULT 0;`,
};
