import { eq, sql } from 'drizzle-orm';
import { alias } from 'drizzle-orm/sqlite-core';
import { signDeployment, type DeploymentDocument } from '../../protocol/deployment.js';
import type { PinnedManifest } from '../../manifests/model.js';
import type { Client } from '@libsql/client';
import type { ControlPlaneContext, Db, Tx } from '../context.js';
import { desired, manifests } from '../db/schema.js';

/**
 * Points a device at a manifest. The sequence only goes up (the row is never deleted), the
 * manifest it replaces is remembered for rollback, and the device's long poll wakes after commit.
 * Assigning the manifest it already has changes only the campaign it belongs to.
 */
export async function assignRelease(ctx: Pick<ControlPlaneContext, 'now' | 'afterCommit' | 'waiters'>, tx: Tx, deviceId: string, manifestId: string, opts: { campaignId: string | null }): Promise<void> {
  const now = ctx.now().getTime();
  const cur = (await tx.select().from(desired).where(eq(desired.deviceId, deviceId)).limit(1))[0];
  if (!cur) {
    await tx.insert(desired).values({ deviceId, manifestId, sequence: 1, campaignId: opts.campaignId, previousManifestId: null, issuedAt: now });
  } else if (cur.manifestId === manifestId) {
    if (cur.campaignId !== opts.campaignId) await tx.update(desired).set({ campaignId: opts.campaignId }).where(eq(desired.deviceId, deviceId));
    return;
  } else {
    await tx
      .update(desired)
      .set({ manifestId, sequence: cur.sequence + 1, campaignId: opts.campaignId, previousManifestId: cur.manifestId, issuedAt: now })
      .where(eq(desired.deviceId, deviceId));
  }
  ctx.afterCommit(tx, () => ctx.waiters.wake(deviceId));
}

/**
 * Sends a device back to the manifest it had before its current one, with a new, higher sequence
 * (a device never accepts a lower one). Returns false when there is nothing to go back to.
 */
export async function rollbackRelease(ctx: Pick<ControlPlaneContext, 'now' | 'afterCommit' | 'waiters'>, tx: Tx, deviceId: string): Promise<boolean> {
  const cur = (await tx.select().from(desired).where(eq(desired.deviceId, deviceId)).limit(1))[0];
  if (!cur || !cur.previousManifestId) return false;
  await tx
    .update(desired)
    .set({ manifestId: cur.previousManifestId, previousManifestId: cur.manifestId, sequence: cur.sequence + 1, issuedAt: ctx.now().getTime() })
    .where(eq(desired.deviceId, deviceId));
  ctx.afterCommit(tx, () => ctx.waiters.wake(deviceId));
  return true;
}

/** The sequence of a device's desired state, null when none is assigned: all a 304 needs. */
export async function desiredSequence(client: Client, deviceId: string): Promise<number | null> {
  // Raw SQL: this is what every 304 costs, so no query building per call.
  const rows = await client.execute({ sql: 'SELECT sequence FROM desired WHERE device_id = ?', args: [deviceId] });
  return rows.rows.length ? Number(rows.rows[0].sequence) : null;
}

export interface DesiredRelease {
  sequence: number;
  campaignId: string | null;
  issuedAt: number;
  manifest: { id: string; name: string; version: string; digest: string; spec: PinnedManifest };
  previous: { id: string; name: string; version: string; spec: PinnedManifest } | null;
}

export async function desiredRelease(db: Db, deviceId: string): Promise<DesiredRelease | null> {
  const prev = alias(manifests, 'prev');
  const rows = await db
    .select({ d: desired, m: manifests, p: { id: prev.id, name: prev.name, version: prev.version, spec: prev.spec } })
    .from(desired)
    .innerJoin(manifests, eq(manifests.id, desired.manifestId))
    .leftJoin(prev, eq(prev.id, desired.previousManifestId))
    .where(eq(desired.deviceId, deviceId))
    .limit(1);
  const r = rows[0];
  if (!r) return null;
  return {
    sequence: r.d.sequence,
    campaignId: r.d.campaignId,
    issuedAt: r.d.issuedAt,
    manifest: { id: r.m.id, name: r.m.name, version: r.m.version, digest: r.m.digest, spec: JSON.parse(r.m.spec) as PinnedManifest },
    previous: r.p && r.p.id ? { id: r.p.id, name: r.p.name as string, version: r.p.version as string, spec: JSON.parse(r.p.spec as string) as PinnedManifest } : null,
  };
}

/** The signed deployment document a device is served, or null when nothing is assigned. */
export async function getDesiredDocument(ctx: Pick<ControlPlaneContext, 'db' | 'keys' | 'now' | 'config'>, deviceId: string): Promise<{ sequence: number; document: string } | null> {
  const rel = await desiredRelease(ctx.db, deviceId);
  if (!rel) return null;
  const iat = Math.floor(ctx.now().getTime() / 1000);
  const doc: DeploymentDocument = {
    device: deviceId,
    sequence: rel.sequence,
    iat,
    exp: iat + ctx.config.documentTtlSec,
    manifest: { name: rel.manifest.name, version: rel.manifest.version, digest: rel.manifest.digest },
    spec: rel.manifest.spec,
    ...(rel.campaignId ? { campaign: rel.campaignId } : {}),
  };
  return { sequence: rel.sequence, document: await signDeployment(doc, ctx.keys.active()) };
}

/** How far back the watcher looks: covers clock skew between processes and slow commits. */
const WATCH_SLACK_MS = 10_000;

/**
 * Wakes long polls for assignments this process did not make (another control plane sharing the
 * database, a script): one indexed query per interval for all waiting devices, not one per poll.
 * A device woken without a change simply re-reads its sequence and waits again.
 */
export function watchDesiredChanges(ctx: Pick<ControlPlaneContext, 'db' | 'waiters' | 'log' | 'now' | 'config'>): { stop(): void } {
  let busy = false;
  const timer = setInterval(() => {
    if (busy || ctx.waiters.size === 0) return;
    busy = true;
    const since = ctx.now().getTime() - ctx.config.pollFallbackMs - WATCH_SLACK_MS;
    ctx.db
      .all<{ device_id: string }>(sql`SELECT device_id FROM desired WHERE issued_at >= ${since}`)
      .then((rows) => {
        for (const r of rows) if (ctx.waiters.has(r.device_id)) ctx.waiters.wake(r.device_id);
      })
      .catch((err: unknown) => ctx.log.warn({ err }, 'desired-state watcher query failed'))
      .finally(() => {
        busy = false;
      });
  }, ctx.config.pollFallbackMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
