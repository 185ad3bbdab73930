import { sql } from 'drizzle-orm';
import type { Manifest } from '../../manifests/model.js';
import type { Reader } from '../campaigns/store.js';
import { ConfigLacking, parseConfig, sameConfig, snapshotConfig, snapshotInputs, type ConfigContext } from '../devices/device-config.js';
import { selectorCondition, type Selector } from '../selector.js';

/**
 * The devices a `--reconfigure` campaign takes: those the selector picks that already have this
 * manifest and whose values (or secrets) resolve differently now. The others have nothing to
 * change, so the campaign neither waits on them nor takes them from another campaign's reach.
 * Read outside the write lock; each wave resolves again when it is assigned.
 */
export async function reconfiguredDevices(ctx: ConfigContext, db: Reader, release: string, spec: Manifest, selector: Selector): Promise<{ affected: string[]; unchanged: number; otherRelease: number }> {
  const at = release.lastIndexOf('@');
  const [m] = await db.all<{ id: string }>(sql`SELECT id FROM manifests WHERE name = ${release.slice(0, at)} AND version = ${release.slice(at + 1)}`);
  const manifestId = m?.id;
  const rows = await db.all<{ id: string; serial: string; labels: string; manifest_id: string | null; config: string | null }>(sql`
    SELECT d.id, d.serial, d.labels, ds.manifest_id, ds.config FROM devices d LEFT JOIN desired ds ON ds.device_id = d.id
    WHERE d.status <> 'revoked' AND ${selectorCondition(selector, sql`d.labels`)}`);
  const inputs = await snapshotInputs(ctx, db, spec);
  const affected: string[] = [];
  let unchanged = 0;
  let otherRelease = 0;
  for (const r of rows) {
    if (r.manifest_id !== manifestId) {
      otherRelease += 1;
      continue;
    }
    try {
      const now = await snapshotConfig(db, { id: r.id, serial: r.serial, labels: JSON.parse(r.labels) as Record<string, string> }, inputs);
      if (sameConfig(now, parseConfig(r.config))) unchanged += 1;
      else affected.push(r.id);
    } catch (err) {
      // The up-front check refused lacking devices before this runs; one lacking since is the wave's to report.
      if (!(err instanceof ConfigLacking)) throw err;
      affected.push(r.id);
    }
  }
  return { affected, unchanged, otherRelease };
}
