import { sql } from 'drizzle-orm';
import type { Manifest } from '../../manifests/model.js';
import { privilegesOf } from '../../manifests/privileges.js';
import type { Tx } from '../context.js';
import { checkPrivileges } from './check.js';
import { loadPolicies, rulesOf } from './store.js';

/**
 * Devices that joined a running campaign late (enrolled or relabelled after its creation, which
 * checked every device then) are checked when their wave is assigned: one that lacks a privilege is
 * never deployed; it is marked failed with the reason, so the campaign's status names it. A manifest
 * that asks for nothing costs one JSON parse here.
 */
export async function skipUngrantedLateJoiners(tx: Tx, campaign: { id: string; manifestId: string; spec: { selector: string } }, now: number): Promise<number> {
  const [m] = await tx.all<{ spec: string }>(sql`SELECT spec FROM manifests WHERE id = ${campaign.manifestId}`);
  if (!m) return 0;
  const privileges = privilegesOf(JSON.parse(m.spec) as Manifest);
  if (!privileges.length) return 0;
  const late = await tx.all<{ device_id: string; serial: string; labels: string }>(sql`SELECT cd.device_id, d.serial, d.labels FROM campaign_devices cd
    JOIN devices d ON d.id = cd.device_id WHERE cd.campaign_id = ${campaign.id} AND cd.state = 'pending' AND cd.late = 1`);
  if (!late.length) return 0;
  const rules = rulesOf(await loadPolicies(tx));
  let skipped = 0;
  for (const d of late) {
    const [group] = checkPrivileges(privileges, [{ serial: d.serial, labels: JSON.parse(d.labels) as Record<string, string> }], rules, '');
    if (!group) continue;
    const reason = `skipped, never deployed: device ${d.serial} joined late and ${group.message.replace(/^1 device /, '')}`;
    await tx.run(sql`UPDATE campaign_devices SET state = 'failed', finished_at = ${now}, last_error = ${reason}
      WHERE campaign_id = ${campaign.id} AND device_id = ${d.device_id} AND state = 'pending'`);
    skipped += 1;
  }
  return skipped;
}
