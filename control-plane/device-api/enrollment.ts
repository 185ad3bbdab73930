import { randomBytes } from 'node:crypto';
import { and, eq, lt } from 'drizzle-orm';
import { Hono } from 'hono';
import { importPublicKey, verifyBytes } from '../../protocol/keys.js';
import { enrollChallengeRequest, enrollProofBytes, enrollRequest } from '../../protocol/device.js';
import { issueDeviceToken } from './device-auth.js';
import type { ControlPlaneContext } from '../context.js';
import { devices, enrollChallenges } from '../db/schema.js';
import { publishEvent } from '../webhooks/outbox.js';
import { HttpError, jsonBody, type AppEnv } from '../http.js';

type Refusal = { status: 401 | 403; code: string; message: string };

/**
 * The second enrollment factor: possession of the private key whose public half the operator
 * imported. A challenge is used at most once, whatever the outcome, and expires quickly.
 */
export function enrollmentRoutes(ctx: ControlPlaneContext) {
  const app = new Hono<AppEnv>();

  app.post('/challenge', async (c) => {
    const { serial } = await jsonBody(c, enrollChallengeRequest);
    const now = ctx.now().getTime();
    const challenge = randomBytes(32).toString('base64url');
    const expiresAt = now + ctx.config.challengeTtlMs;
    const known = (await ctx.db.select({ status: devices.status }).from(devices).where(eq(devices.serial, serial)).limit(1))[0];
    // Only imported, unrevoked serials cost a row; others get an equally random challenge that
    // will never verify, so the anonymous endpoint cannot fill the database.
    if (known && known.status !== 'revoked') {
      await ctx.write(async (tx) => {
        await tx.delete(enrollChallenges).where(lt(enrollChallenges.expiresAt, now - 3_600_000));
        await tx.insert(enrollChallenges).values({ challenge, serial, createdAt: now, expiresAt });
      });
    }
    return c.json({ challenge, expiresAt: new Date(expiresAt).toISOString() });
  });

  app.post('/', async (c) => {
    const req = await jsonBody(c, enrollRequest);
    const now = ctx.now().getTime();
    const outcome = await ctx.write(async (tx): Promise<Refusal | { device: typeof devices.$inferSelect }> => {
      const refuse = async (r: Refusal) => {
        await ctx.audit(tx, { actor: `device-serial:${req.serial}`, action: 'device.enroll.refused', target: req.serial, after: { code: r.code, reason: r.message } });
        return r;
      };
      const d = (await tx.select().from(devices).where(eq(devices.serial, req.serial)).limit(1))[0];
      if (!d) return refuse({ status: 401, code: 'unknown-serial', message: `serial ${req.serial} was not imported` });
      if (d.status === 'revoked') return refuse({ status: 403, code: 'device-revoked', message: `device ${req.serial} is revoked` });
      const ch = (await tx.select().from(enrollChallenges).where(and(eq(enrollChallenges.challenge, req.challenge), eq(enrollChallenges.serial, req.serial))).limit(1))[0];
      if (!ch) return refuse({ status: 401, code: 'unknown-challenge', message: 'challenge was not issued for this serial; request a new one' });
      if (ch.usedAt !== null) return refuse({ status: 401, code: 'replayed-challenge', message: 'challenge was already used; request a new one' });
      await tx.update(enrollChallenges).set({ usedAt: now }).where(eq(enrollChallenges.challenge, ch.challenge));
      if (ch.expiresAt <= now) return refuse({ status: 401, code: 'stale-challenge', message: `challenge expired at ${new Date(ch.expiresAt).toISOString()}; request a new one` });
      if (!verifyBytes(importPublicKey(d.publicKey), enrollProofBytes(req.serial, req.challenge), req.signature)) {
        return refuse({ status: 401, code: 'wrong-key', message: `signature does not verify with the public key recorded for ${req.serial}` });
      }
      const first = d.status === 'registered';
      if (first) await tx.update(devices).set({ status: 'enrolled', enrolledAt: now }).where(eq(devices.id, d.id));
      await ctx.audit(tx, { actor: `device:${d.id}`, action: first ? 'device.enroll' : 'device.renew', target: req.serial });
      if (first) ctx.afterCommit(tx, () => ctx.events.emit('device-enrolled', { deviceId: d.id }));
      if (first) await publishEvent(tx, now, 'device.enrolled', `devices/${d.serial}`, { deviceId: d.id, serial: d.serial, labels: JSON.parse(d.labels) as Record<string, string> });
      return { device: { ...d, status: 'enrolled' } };
    });
    if ('code' in outcome) {
      c.var.log.warn({ serial: req.serial, code: outcome.code }, 'enrollment refused');
      throw new HttpError(outcome.status, outcome.code, outcome.message);
    }
    const d = outcome.device;
    const { token, expiresAt } = await issueDeviceToken(ctx, d);
    return c.json({ deviceId: d.id, token, tokenExpiresAt: expiresAt, registryProxy: ctx.config.registryProxy, jwks: ctx.keys.jwks() });
  });

  return app;
}
