import { sql } from 'drizzle-orm';
import type { Manifest } from '../../manifests/model.js';
import type { Tx } from '../context.js';
import { ConfigLacking, snapshotConfig, snapshotInputs, type ConfigContext, type DeviceConfig, type SnapshotDevice } from '../devices/device-config.js';

/**
 * A wave's devices with their configs resolved. Campaign create refused devices lacking a value up
 * front; one that lacks it now (it joined late, or a value was removed since) is never deployed:
 * it is failed with what it lacks, so the campaign's status names it, like a late joiner that
 * lacks a privilege (policy/late-joiners.ts).
 */
export async function snapshotWave(ctx: ConfigContext, tx: Tx, manifestId: string, devices: SnapshotDevice[]): Promise<{ ready: { id: string; config: DeviceConfig | null }[]; lacking: { id: string; reason: string }[] }> {
  const ready: { id: string; config: DeviceConfig | null }[] = [];
  const lacking: { id: string; reason: string }[] = [];
  if (!devices.length) return { ready, lacking };
  const [m] = await tx.all<{ spec: string }>(sql`SELECT spec FROM manifests WHERE id = ${manifestId}`);
  const inputs = await snapshotInputs(ctx, tx, JSON.parse(m.spec) as Manifest);
  for (const d of devices) {
    try {
      ready.push({ id: d.id, config: await snapshotConfig(tx, d, inputs) });
    } catch (err) {
      if (!(err instanceof ConfigLacking)) throw err;
      lacking.push({ id: d.id, reason: `skipped, never deployed: ${err.message}` });
    }
  }
  return { ready, lacking };
}

export async function skipLacking(tx: Tx, campaignId: string, lacking: { id: string; reason: string }[], now: number): Promise<void> {
  for (const d of lacking) {
    await tx.run(sql`UPDATE campaign_devices SET state = 'failed', finished_at = ${now}, last_error = ${d.reason}, assigning = 0
      WHERE campaign_id = ${campaignId} AND device_id = ${d.id}`);
  }
}
