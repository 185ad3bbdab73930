import { randomBytes } from 'node:crypto';
import { desc, eq, inArray } from 'drizzle-orm';
import { Hono } from 'hono';
import { assignBody, deviceListQuery, historyQuery, importQuery, labelsEdit } from '../../protocol/devices.js';
import type { ReleasePhase, ServiceReport } from '../../protocol/device.js';
import { requireRole } from '../operators/auth.js';
import type { ControlPlaneContext, Db } from '../context.js';
import { lastSeenOf, listDevices } from './list.js';
import { desired, deviceSightings, devices, reported, reportHistory } from '../db/schema.js';
import { assignRelease, desiredRelease, rollbackRelease } from './desired.js';
import { removeDevice } from './remove.js';
import { HttpError, jsonBody, queryOf, type AppEnv } from '../http.js';
import { findManifest } from '../manifests/routes.js';
import { parseSelector, SelectorError, type Selector } from '../selector.js';
import { bytesOf, computeTwin } from './twin.js';
import { rolloutRefusal } from '../vars/rollout.js';
import { ConfigLacking } from './device-config.js';
import type { Manifest } from '../../manifests/model.js';
import { MAX_LABELS, tooManyLabels } from '../../common/grammar.js';
import { keysHeldElsewhere, MAX_REPORTED_ERRORS, parseDeviceRecordStream } from './import-records.js';

type DeviceRow = typeof devices.$inferSelect;

async function deviceBySerial(db: Db, serial: string): Promise<DeviceRow> {
  const row = (await db.select().from(devices).where(eq(devices.serial, serial)).limit(1))[0];
  if (!row) throw new HttpError(404, 'device-not-found', `no device with serial ${serial}`);
  return row;
}

async function holdersOf(db: Db, publicKeys: string[]): Promise<{ serial: string; publicKey: string }[]> {
  const out: { serial: string; publicKey: string }[] = [];
  for (let i = 0; i < publicKeys.length; i += 500) {
    out.push(...(await db.select({ serial: devices.serial, publicKey: devices.publicKey }).from(devices).where(inArray(devices.publicKey, publicKeys.slice(i, i + 500)))));
  }
  return out;
}

function labelsOf(row: { labels: string }): Record<string, string> {
  return JSON.parse(row.labels) as Record<string, string>;
}

function selectorOf(text: string | undefined): Selector | null {
  if (text === undefined || text.trim() === '') return null;
  try {
    return parseSelector(text);
  } catch (err) {
    if (err instanceof SelectorError) throw new HttpError(400, 'invalid-selector', err.message, 'selector');
    throw err;
  }
}

export function deviceRoutes(ctx: ControlPlaneContext) {
  const app = new Hono<AppEnv>();

  app.post('/import', requireRole('admin'), async (c) => {
    const q = queryOf(c, importQuery);
    const type = (c.req.header('content-type') ?? '').split(';')[0].trim().toLowerCase();
    const format = q.format ?? (type === 'text/csv' ? 'csv' : ['application/x-ndjson', 'application/jsonl', 'application/jsonlines', 'application/x-jsonlines'].includes(type) ? 'jsonl' : null);
    if (!format) throw new HttpError(415, 'unsupported-media-type', 'send text/csv or application/x-ndjson (or ?format=csv|jsonl)');
    const parsed = await parseDeviceRecordStream(c.req.raw.body, format);
    const held = parsed.ok ? keysHeldElsewhere(parsed.records, await holdersOf(ctx.db, parsed.records.map((r) => r.publicKey))) : [];
    const errors = parsed.ok ? held.slice(0, MAX_REPORTED_ERRORS) : parsed.errors;
    const errorCount = parsed.ok ? held.length : parsed.errorCount;
    if (!parsed.ok || errorCount > 0) {
      const first = errors[0];
      return c.json({ error: { code: 'invalid-records', message: `line ${first.line}: ${first.message}${errorCount > 1 ? ` (and ${errorCount - 1} more)` : ''}; nothing was imported`, field: `line ${first.line}` }, errors, errorCount }, 422);
    }
    const actor = c.var.actor;
    const result = await ctx.write(async (tx) => {
      const counts = { created: 0, updated: 0, unchanged: 0 };
      const serials = parsed.records.map((r) => r.serial);
      const existing = new Map<string, DeviceRow>();
      for (let i = 0; i < serials.length; i += 500) {
        for (const row of await tx.select().from(devices).where(inArray(devices.serial, serials.slice(i, i + 500)))) existing.set(row.serial, row);
      }
      const now = ctx.now().getTime();
      const fresh: (typeof devices.$inferInsert)[] = [];
      for (const r of parsed.records) {
        const old = existing.get(r.serial);
        const labels = JSON.stringify(r.labels);
        if (!old) {
          fresh.push({ id: 'dev_' + randomBytes(9).toString('base64url'), serial: r.serial, publicKey: r.publicKey, labels, status: 'registered', createdAt: now, tokenEpoch: 0 });
          counts.created++;
        } else if (old.publicKey === r.publicKey && old.labels === labels) {
          counts.unchanged++;
        } else {
          // A new key from the manufacturer invalidates credentials proven with the old one.
          const keyChanged = old.publicKey !== r.publicKey;
          await tx.update(devices).set({ publicKey: r.publicKey, labels, ...(keyChanged ? { tokenEpoch: old.tokenEpoch + 1 } : {}) }).where(eq(devices.id, old.id));
          await ctx.audit(tx, { actor, action: 'device.update', target: r.serial, before: { publicKey: old.publicKey, labels: labelsOf(old) }, after: { publicKey: r.publicKey, labels: r.labels } });
          counts.updated++;
        }
      }
      for (let i = 0; i < fresh.length; i += 200) await tx.insert(devices).values(fresh.slice(i, i + 200));
      await ctx.audit(tx, { actor, action: 'device.import', target: `${parsed.records.length} records`, after: { ...counts, created: fresh.map((f) => f.serial) } });
      return counts;
    });
    return c.json(result);
  });

  app.get('/', requireRole('viewer'), async (c) => {
    const q = queryOf(c, deviceListQuery);
    const page = { selector: selectorOf(q.selector), limit: q.limit, offset: q.offset, after: q.after ?? null };
    return c.json(await listDevices(ctx.db, page, { seen: ctx.seen, now: ctx.now().getTime(), offlineAfterMs: ctx.config.offlineAfterMs }));
  });

  app.get('/:serial', requireRole('viewer'), async (c) => {
    const d = await deviceBySerial(ctx.db, c.req.param('serial'));
    const [rel, rep, sighting] = await Promise.all([
      desiredRelease(ctx.db, d.id),
      ctx.db.select().from(reported).where(eq(reported.deviceId, d.id)).limit(1),
      ctx.db.select({ at: deviceSightings.lastSeenAt }).from(deviceSightings).where(eq(deviceSightings.deviceId, d.id)).limit(1),
    ]);
    const r = rep[0];
    const twin = computeTwin({
      desired: rel ? { sequence: rel.sequence, name: rel.manifest.name, version: rel.manifest.version, spec: rel.manifest.spec, campaignId: rel.campaignId } : null,
      reported: r
        ? { sequence: r.sequence, desiredSequence: r.desiredSequence, running: r.running, phase: r.phase as ReleasePhase, bytes: bytesOf(r), services: JSON.parse(r.services) as Record<string, ServiceReport>, error: r.error, at: r.at, receivedAt: r.receivedAt }
        : null,
      lastSeenAt: lastSeenOf(ctx.seen, d.id, sighting[0]?.at ?? null, r?.receivedAt ?? null),
      now: ctx.now().getTime(),
      offlineAfterMs: ctx.config.offlineAfterMs,
    });
    return c.json({
      id: d.id,
      serial: d.serial,
      labels: labelsOf(d),
      status: d.status,
      createdAt: new Date(d.createdAt).toISOString(),
      enrolledAt: d.enrolledAt === null ? null : new Date(d.enrolledAt).toISOString(),
      previousRelease: rel?.previous ? `${rel.previous.name}@${rel.previous.version}` : null,
      ...twin,
    });
  });

  app.get('/:serial/history', requireRole('viewer'), async (c) => {
    const q = queryOf(c, historyQuery);
    const d = await deviceBySerial(ctx.db, c.req.param('serial'));
    // The newest `limit` reports (a small limit must not show the oldest ones), answered oldest first.
    const rows = (await ctx.db.select().from(reportHistory).where(eq(reportHistory.deviceId, d.id)).orderBy(desc(reportHistory.id)).limit(q.limit)).reverse();
    return c.json({ reports: rows.map((r) => ({ receivedAt: new Date(r.receivedAt).toISOString(), ...JSON.parse(r.report) })) });
  });

  app.patch('/:serial/labels', requireRole('release-manager'), async (c) => {
    const body = await jsonBody(c, labelsEdit);
    const serial = c.req.param('serial');
    const actor = c.var.actor;
    const out = await ctx.write(async (tx) => {
      const d = (await tx.select().from(devices).where(eq(devices.serial, serial)).limit(1))[0];
      if (!d) throw new HttpError(404, 'device-not-found', `no device with serial ${serial}`);
      const before = labelsOf(d);
      const after: Record<string, string> = { ...before, ...body.set };
      for (const k of body.remove) delete after[k];
      // Each edit is within the cap; their sum may not be.
      const count = Object.keys(after).length;
      if (count > MAX_LABELS && count > Object.keys(before).length) throw new HttpError(422, 'too-many-labels', `${serial}: ${tooManyLabels(count)}`, 'set');
      const changed = JSON.stringify(after) !== JSON.stringify(before);
      if (changed) {
        await tx.update(devices).set({ labels: JSON.stringify(after) }).where(eq(devices.id, d.id));
        await ctx.audit(tx, { actor, action: 'device.labels', target: serial, before, after });
        ctx.afterCommit(tx, () => ctx.events.emit('device-labels-changed', { deviceId: d.id }));
      }
      return { serial, labels: after, changed };
    });
    return c.json(out);
  });

  app.post('/:serial/assign', requireRole('release-manager'), async (c) => {
    const body = await jsonBody(c, assignBody);
    const [name, version] = body.manifest.split('@');
    const m = await findManifest(ctx.db, name, version);
    if (!m) throw new HttpError(404, 'manifest-not-found', `${body.manifest} is not published`, 'manifest');
    const serial = c.req.param('serial');
    const actor = c.var.actor;
    const target = await deviceBySerial(ctx.db, serial);
    const refused = await rolloutRefusal(c, ctx.db, body.manifest, JSON.parse(m.spec) as Manifest, '', target.id);
    if (refused) return refused;
    await ctx.write(async (tx) => {
      const d = (await tx.select().from(devices).where(eq(devices.serial, serial)).limit(1))[0];
      if (!d) throw new HttpError(404, 'device-not-found', `no device with serial ${serial}`);
      if (d.status === 'revoked') throw new HttpError(409, 'device-revoked', `device ${serial} is revoked`);
      const before = (await tx.select().from(desired).where(eq(desired.deviceId, d.id)).limit(1))[0];
      try {
        await assignRelease(ctx, tx, d.id, m.id, { campaignId: null });
      } catch (err) {
        // A value removed between the check above and this write: refused, nothing written.
        if (err instanceof ConfigLacking) throw new HttpError(409, 'variables-lacking', err.message, 'manifest');
        throw err;
      }
      await ctx.audit(tx, { actor, action: 'device.assign', target: serial, before: before ? { manifestId: before.manifestId, sequence: before.sequence } : null, after: { manifest: body.manifest } });
    });
    const rel = await desiredRelease(ctx.db, (await deviceBySerial(ctx.db, serial)).id);
    return c.json({ serial, release: body.manifest, sequence: rel?.sequence ?? null });
  });

  app.post('/:serial/rollback', requireRole('release-manager'), async (c) => {
    const serial = c.req.param('serial');
    const actor = c.var.actor;
    const d = await deviceBySerial(ctx.db, serial);
    const done = await ctx.write(async (tx) => {
      const ok = await rollbackRelease(ctx, tx, d.id);
      if (ok) await ctx.audit(tx, { actor, action: 'device.rollback', target: serial });
      return ok;
    });
    if (!done) throw new HttpError(409, 'no-previous-release', `device ${serial} has no previous release to go back to`);
    const rel = await desiredRelease(ctx.db, d.id);
    return c.json({ serial, release: rel ? `${rel.manifest.name}@${rel.manifest.version}` : null, sequence: rel?.sequence ?? null });
  });

  app.post('/:serial/revoke', requireRole('admin'), async (c) => {
    const serial = c.req.param('serial');
    const actor = c.var.actor;
    const out = await ctx.write(async (tx) => {
      const d = (await tx.select().from(devices).where(eq(devices.serial, serial)).limit(1))[0];
      if (!d) throw new HttpError(404, 'device-not-found', `no device with serial ${serial}`);
      if (d.status !== 'revoked') {
        await tx.update(devices).set({ status: 'revoked', tokenEpoch: d.tokenEpoch + 1 }).where(eq(devices.id, d.id));
        await ctx.audit(tx, { actor, action: 'device.revoke', target: serial, before: { status: d.status }, after: { status: 'revoked' } });
        ctx.afterCommit(tx, () => {
          ctx.waiters.wake(d.id);
          ctx.events.emit('device-revoked', { deviceId: d.id });
        });
      }
      return { serial, status: 'revoked' as const };
    });
    return c.json(out);
  });

  app.delete('/:serial', requireRole('admin'), async (c) => {
    const serial = c.req.param('serial');
    const actor = c.var.actor;
    return c.json(await ctx.write((tx) => removeDevice(ctx, tx, serial, actor)));
  });

  return app;
}
