import { eq, inArray, sql } from 'drizzle-orm';
import { alias } from 'drizzle-orm/sqlite-core';
import { deploymentPayload, signDeploymentPayload, type DeploymentDocument } from '../../protocol/deployment.js';
import { canonicalJson } from '../../manifests/canonical.js';
import { sha256Digest } from '../../common/digest.js';
import type { Manifest, PinnedManifest } from '../../manifests/model.js';
import { substituteVariables } from '../../manifests/variables.js';
import type { ControlPlaneContext, Db, Tx } from '../context.js';
import type { DesiredDocumentRow } from '../db/point-reads.js';
import { desired, devices, manifests } from '../db/schema.js';
import { noteDesiredChanges } from './change-feed.js';
import { configText, parseConfig, sameConfig, snapshotConfig, snapshotInputs, type ConfigContext, type DeviceConfig } from './device-config.js';

type AssignCtx = Pick<ControlPlaneContext, 'now' | 'afterCommit' | 'waiters'> & ConfigContext;

/** What assigning a manifest (with the device's config) does to its desired row, pure. */
export function assignmentAction(cur: { manifestId: string; config: DeviceConfig | null } | undefined, manifestId: string, config: DeviceConfig | null): 'insert' | 'new-sequence' | 'campaign-only' {
  if (!cur) return 'insert';
  return cur.manifestId === manifestId && sameConfig(cur.config, config) ? 'campaign-only' : 'new-sequence';
}

/**
 * Points a device at a manifest, with its config resolved now (variables, secrets). The sequence
 * only goes up (the row is never deleted), the manifest and config it replaces are remembered for
 * rollback, and a change-feed row wakes the device's long poll (in any process) after commit. Assigning the manifest it already has
 * with the same config changes only the campaign it belongs to; with a changed config (a variable
 * set since) it is a new document. Throws ConfigLacking when the device lacks a variable.
 */
export async function assignRelease(ctx: AssignCtx, tx: Tx, deviceId: string, manifestId: string, opts: { campaignId: string | null }): Promise<void> {
  const [m] = await tx.select({ spec: manifests.spec }).from(manifests).where(eq(manifests.id, manifestId));
  const [d] = await tx.select({ id: devices.id, serial: devices.serial, labels: devices.labels }).from(devices).where(eq(devices.id, deviceId));
  if (!m || !d) throw new Error(`assignRelease: no manifest ${manifestId} or device ${deviceId}`);
  const config = await snapshotConfig(tx, { ...d, labels: JSON.parse(d.labels) as Record<string, string> }, await snapshotInputs(ctx, tx, JSON.parse(m.spec) as Manifest));
  await assignBatch(ctx, tx, manifestId, opts.campaignId, [{ id: deviceId, config }]);
}

/**
 * Assigns one manifest to many devices, each with its own config: the decisions are made per
 * device (assignmentAction), the writes grouped by config so a wave of devices that share their
 * values costs a few statements, not one per device. Wakes their long polls after commit.
 */
export async function assignBatch(ctx: AssignCtx, tx: Tx, manifestId: string, campaignId: string | null, batch: { id: string; config: DeviceConfig | null }[]): Promise<void> {
  const now = ctx.now().getTime();
  const current = new Map<string, { manifestId: string; config: DeviceConfig | null }>();
  for (const ids of chunks(batch.map((b) => b.id))) {
    const rows = await tx.select({ deviceId: desired.deviceId, manifestId: desired.manifestId, config: desired.config }).from(desired).where(inArray(desired.deviceId, ids));
    for (const r of rows) current.set(r.deviceId, { manifestId: r.manifestId, config: parseConfig(r.config) });
  }
  const groups = new Map<string, { action: 'insert' | 'new-sequence' | 'campaign-only'; config: string | null; ids: string[] }>();
  for (const b of batch) {
    const action = assignmentAction(current.get(b.id), manifestId, b.config);
    const config = action === 'campaign-only' ? null : configText(b.config);
    const key = `${action}\0${config ?? ''}`;
    const g = groups.get(key) ?? { action, config, ids: [] };
    g.ids.push(b.id);
    groups.set(key, g);
  }
  const woken: string[] = [];
  for (const g of groups.values()) {
    for (const ids of chunks(g.ids)) {
      if (g.action === 'campaign-only') {
        await tx.update(desired).set({ campaignId }).where(inArray(desired.deviceId, ids));
        continue;
      }
      if (g.action === 'insert') {
        await tx.insert(desired).values(ids.map((deviceId) => ({ deviceId, manifestId, sequence: 1, campaignId, previousManifestId: null, issuedAt: now, config: g.config, previousConfig: null })));
      } else {
        await tx
          .update(desired)
          .set({ previousManifestId: sql`${desired.manifestId}`, previousConfig: sql`${desired.config}`, manifestId, config: g.config, sequence: sql`${desired.sequence} + 1`, campaignId, issuedAt: now })
          .where(inArray(desired.deviceId, ids));
      }
      woken.push(...ids);
    }
  }
  await noteDesiredChanges(ctx, tx, woken, now);
}

const CHUNK = 500;
function chunks<T>(list: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += CHUNK) out.push(list.slice(i, i + CHUNK));
  return out;
}

/**
 * Sends a device back to the manifest (and config) it had before its current one, with a new,
 * higher sequence (a device never accepts a lower one). Returns false when there is nothing to go back to.
 */
export async function rollbackRelease(ctx: AssignCtx, tx: Tx, deviceId: string): Promise<boolean> {
  const cur = (await tx.select().from(desired).where(eq(desired.deviceId, deviceId)).limit(1))[0];
  if (!cur || !cur.previousManifestId) return false;
  await tx
    .update(desired)
    .set({ manifestId: cur.previousManifestId, previousManifestId: cur.manifestId, config: cur.previousConfig, previousConfig: cur.config, sequence: cur.sequence + 1, issuedAt: ctx.now().getTime() })
    .where(eq(desired.deviceId, deviceId));
  await noteDesiredChanges(ctx, tx, [deviceId], ctx.now().getTime());
  return true;
}

export interface DesiredRelease {
  sequence: number;
  campaignId: string | null;
  issuedAt: number;
  /** The manifest as published (variables unsubstituted). */
  manifest: { id: string; name: string; version: string; digest: string; spec: PinnedManifest };
  /** What was resolved for this device at assignment. */
  config: DeviceConfig | null;
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
    config: parseConfig(r.d.config),
    manifest: { id: r.m.id, name: r.m.name, version: r.m.version, digest: r.m.digest, spec: JSON.parse(r.m.spec) as PinnedManifest },
    previous: r.p && r.p.id ? { id: r.p.id, name: r.p.name as string, version: r.p.version as string, spec: JSON.parse(r.p.spec as string) as PinnedManifest } : null,
  };
}

/**
 * The spec a device runs: the published one with the device's values substituted (and `$$` read
 * as `$`). Its own digest goes into the document, since the device checks the digest against the spec.
 */
export function deviceSpec(rel: { manifest: Pick<DesiredRelease['manifest'], 'name' | 'version' | 'spec'>; config: DeviceConfig | null }): PinnedManifest {
  const sub = substituteVariables(rel.manifest.spec, rel.config?.vars ?? {});
  // Resolved at assignment against this very manifest, so nothing can be missing here but by a bug.
  if ('unresolved' in sub) throw new Error(`desired config does not resolve ${rel.manifest.name}@${rel.manifest.version}: ${sub.unresolved.map((u) => u.name).join(', ')}`);
  return sub.value;
}

/** A manifest's spec with one config's values substituted, serialized once for every document that carries it. */
interface SignedSpec {
  name: string;
  version: string;
  digest: string;
  /** canonicalJson of the device spec. */
  json: string;
}

/**
 * Specs already substituted and serialized, per manifest and variable values: a campaign's wave
 * signs the same spec for thousands of devices, and a manifest row never changes once published
 * (a new version is a new row). Bounded: emptied when full (a fleet of per-device values misses
 * and costs what every document cost before).
 */
class SignedSpecs {
  private readonly manifests = new Map<string, { name: string; version: string; spec: PinnedManifest } | null>();
  private readonly specs = new Map<string, SignedSpec>();
  constructor(private readonly max = 1024) {}

  async of(db: Db, manifestId: string, config: DeviceConfig | null): Promise<SignedSpec | null> {
    const key = config?.vars ? `${manifestId}\0${JSON.stringify(config.vars)}` : manifestId;
    const hit = this.specs.get(key);
    if (hit) return hit;
    let m = this.manifests.get(manifestId);
    if (m === undefined) {
      const [r] = await db.select({ name: manifests.name, version: manifests.version, spec: manifests.spec }).from(manifests).where(eq(manifests.id, manifestId));
      m = r ? { name: r.name, version: r.version, spec: JSON.parse(r.spec) as PinnedManifest } : null;
      // A manifest that is not there yet is read again next time.
      if (m) remember(this.manifests, manifestId, m, this.max);
    }
    if (!m) return null;
    const spec = deviceSpec({ manifest: m, config });
    const json = canonicalJson(spec);
    const signed = { name: m.name, version: m.version, digest: sha256Digest(json), json };
    remember(this.specs, key, signed, this.max);
    return signed;
  }
}

function remember<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  if (map.size >= max) map.clear();
  map.set(key, value);
}

/** One cache per control plane (its context); dropped with it. */
const signedSpecs = new WeakMap<object, SignedSpecs>();

/**
 * The signed deployment document a device is served, or null when nothing is assigned. Read with
 * one prepared point read (db/point-reads.ts) and signed on the event loop: a campaign's wave wakes
 * every long poll of its devices at once, each answered with its own document, so this is the
 * whole cost of a woken poll beyond the 304's (about 1 ms of CPU each through drizzle's join, the
 * spec parsed and serialized again and jose's WebCrypto signing, before issue 17's change).
 * `read`: the row, when the poll has just read it.
 */
export async function getDesiredDocument(ctx: Pick<ControlPlaneContext, 'db' | 'reads' | 'keys' | 'now' | 'config'>, deviceId: string, read?: DesiredDocumentRow): Promise<{ sequence: number; document: string } | null> {
  const row = read ?? (await ctx.reads.desiredDocument(deviceId));
  if (!row) return null;
  let specs = signedSpecs.get(ctx);
  if (!specs) signedSpecs.set(ctx, (specs = new SignedSpecs()));
  const config = parseConfig(row.config);
  const spec = await specs.of(ctx.db, row.manifestId, config);
  if (!spec) return null;
  const iat = Math.floor(ctx.now().getTime() / 1000);
  const doc: Omit<DeploymentDocument, 'spec'> = {
    device: deviceId,
    sequence: row.sequence,
    iat,
    exp: iat + ctx.config.documentTtlSec,
    manifest: { name: spec.name, version: spec.version, digest: spec.digest },
    ...(row.campaignId ? { campaign: row.campaignId } : {}),
    // Each secret as a JWE to this device's key alone, snapshotted at assignment (device-secrets/snapshot.ts).
    ...(config?.secrets ? { secrets: config.secrets } : {}),
  };
  return { sequence: row.sequence, document: signDeploymentPayload(deploymentPayload(doc, spec.json), ctx.keys.active()) };
}
