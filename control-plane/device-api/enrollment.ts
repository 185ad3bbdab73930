import { randomBytes } from 'node:crypto';
import { and, eq, lt } from 'drizzle-orm';
import { Hono, type Context } from 'hono';
import { importPublicKey, verifyBytes } from '../../protocol/keys.js';
import { enrollChallengeRequest, enrollProofBytes, enrollRequest } from '../../protocol/device.js';
import { issueDeviceToken } from './device-auth.js';
import type { ControlPlaneContext } from '../context.js';
import { devices, enrollChallenges } from '../db/schema.js';
import { publishEvent } from '../webhooks/outbox.js';
import { errorBody, HttpError, jsonBody, type AppEnv } from '../http.js';
import { clientKey, EnrollGuard } from './enroll-guard.js';
import { checkClientCertificate } from './client-cert.js';

type Refusal = { status: 401 | 403; code: string; message: string };

/**
 * What every refused enrollment answers, whatever the reason: telling an unknown serial from a
 * wrong key or a revoked device would let anyone learn which serials were imported. The reason is
 * in the log and the audit log.
 */
const REFUSED = new HttpError(401, 'enrollment-refused', 'enrollment refused: request a new challenge and sign it with the key the manufacturer recorded for this serial');

const guards = new WeakMap<ControlPlaneContext, EnrollGuard>();

/** Writes the refusals counted but not yet audited (at shutdown). */
export async function closeEnrollment(ctx: ControlPlaneContext): Promise<void> {
  await guards.get(ctx)?.close();
}

/**
 * The second enrollment factor: possession of the private key whose public half the operator
 * imported. A challenge is used at most once, whatever the outcome, and expires quickly.
 */
export function enrollmentRoutes(ctx: ControlPlaneContext) {
  const app = new Hono<AppEnv>();
  const guard = new EnrollGuard({
    burst: ctx.config.enrollBurst,
    perSecond: ctx.config.enrollPerSecond,
    windowMs: ctx.config.refusalAuditWindowMs,
    audit: (r) =>
      ctx
        .write((tx) => ctx.audit(tx, { actor: `address:${r.address}`, action: 'device.enroll.refused', target: r.serial, after: { code: r.code, reason: r.reason, address: r.address, ...r.window } }))
        .catch((err: unknown) => ctx.log.error({ err }, 'refused enrollment not audited')),
  });
  guards.set(ctx, guard);
  // Spent challenges are pruned at most once a minute, not in every challenge's write.
  let prunedAt = -Infinity;
  const addressOf = (c: Context<AppEnv>) => clientKey((c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming?.socket?.remoteAddress);

  // Anyone may call these routes: each address has a budget, and a device that enrolls gets its cost back.
  app.use('*', async (c, next) => {
    const taken = guard.take(addressOf(c));
    if (!taken.ok) {
      c.var.log.warn({ address: addressOf(c), retryAfterSec: taken.retryAfterSec }, 'enrollment rate-limited');
      return c.json(errorBody('rate-limited', `too many enrollment requests from this address; try again in ${taken.retryAfterSec} s`), 429, { 'Retry-After': String(taken.retryAfterSec) });
    }
    await next();
  });

  app.post('/challenge', async (c) => {
    const { serial } = await jsonBody(c, enrollChallengeRequest);
    checkClientCertificate(c, serial);
    const now = ctx.now().getTime();
    const challenge = randomBytes(32).toString('base64url');
    const expiresAt = now + ctx.config.challengeTtlMs;
    const known = (await ctx.db.select({ status: devices.status }).from(devices).where(eq(devices.serial, serial)).limit(1))[0];
    // Only imported, unrevoked serials cost a row; others get an equally random challenge that
    // will never verify, so the anonymous endpoint cannot fill the database.
    if (known && known.status !== 'revoked') {
      const prune = now - prunedAt >= 60_000;
      if (prune) prunedAt = now;
      await ctx.write(async (tx) => {
        if (prune) await tx.delete(enrollChallenges).where(lt(enrollChallenges.expiresAt, now - 3_600_000));
        await tx.insert(enrollChallenges).values({ challenge, serial, createdAt: now, expiresAt });
      });
    }
    return c.json({ challenge, expiresAt: new Date(expiresAt).toISOString() });
  });

  app.post('/', async (c) => {
    const req = await jsonBody(c, enrollRequest);
    checkClientCertificate(c, req.serial);
    const now = ctx.now().getTime();
    const proof = enrollProofBytes(req.serial, req.challenge, req.encryptionKey);
    // The signature is checked before the write: CPU spent inside it holds the database's one write
    // lock, which every worker (and every control plane on the database) waits for. The write
    // re-reads the row and checks again only if the key changed in between.
    const key = (await ctx.db.select({ publicKey: devices.publicKey }).from(devices).where(eq(devices.serial, req.serial)).limit(1))[0]?.publicKey;
    const verified = key !== undefined && verifyBytes(importPublicKey(key), proof, req.signature);
    const outcome = await ctx.write(async (tx): Promise<Refusal | { device: typeof devices.$inferSelect }> => {
      // Audited by the guard, outside this transaction: one row per address and window, not one per request.
      const refuse = async (r: Refusal) => r;
      const d = (await tx.select().from(devices).where(eq(devices.serial, req.serial)).limit(1))[0];
      if (!d) return refuse({ status: 401, code: 'unknown-serial', message: `serial ${req.serial} was not imported` });
      if (d.status === 'revoked') return refuse({ status: 403, code: 'device-revoked', message: `device ${req.serial} is revoked` });
      const ch = (await tx.select().from(enrollChallenges).where(and(eq(enrollChallenges.challenge, req.challenge), eq(enrollChallenges.serial, req.serial))).limit(1))[0];
      if (!ch) return refuse({ status: 401, code: 'unknown-challenge', message: 'challenge was not issued for this serial; request a new one' });
      if (ch.usedAt !== null) return refuse({ status: 401, code: 'replayed-challenge', message: 'challenge was already used; request a new one' });
      await tx.update(enrollChallenges).set({ usedAt: now }).where(eq(enrollChallenges.challenge, ch.challenge));
      if (ch.expiresAt <= now) return refuse({ status: 401, code: 'stale-challenge', message: `challenge expired at ${new Date(ch.expiresAt).toISOString()}; request a new one` });
      if (!(d.publicKey === key ? verified : verifyBytes(importPublicKey(d.publicKey), proof, req.signature))) {
        return refuse({ status: 401, code: 'wrong-key', message: `signature does not verify with the public key recorded for ${req.serial}` });
      }
      const first = d.status === 'registered';
      if (first) await tx.update(devices).set({ status: 'enrolled', enrolledAt: now }).where(eq(devices.id, d.id));
      // The proof covered the encryption key: a device enrolled before secrets registers it at its next renewal.
      if (req.encryptionKey && req.encryptionKey !== d.encryptionKey) {
        await tx.update(devices).set({ encryptionKey: req.encryptionKey }).where(eq(devices.id, d.id));
        await ctx.audit(tx, { actor: `device:${d.id}`, action: 'device.encryption-key', target: req.serial, before: d.encryptionKey ? { encryptionKey: d.encryptionKey } : undefined, after: { encryptionKey: req.encryptionKey } });
      }
      await ctx.audit(tx, { actor: `device:${d.id}`, action: first ? 'device.enroll' : 'device.renew', target: req.serial });
      if (first) ctx.afterCommit(tx, () => ctx.events.emit('device-enrolled', { deviceId: d.id }));
      if (first) await publishEvent(tx, now, 'device.enrolled', `devices/${d.serial}`, { deviceId: d.id, serial: d.serial, labels: JSON.parse(d.labels) as Record<string, string> });
      return { device: { ...d, status: 'enrolled' } };
    });
    const address = addressOf(c);
    if ('code' in outcome) {
      c.var.log.warn({ serial: req.serial, address, code: outcome.code, reason: outcome.message }, 'enrollment refused');
      guard.refused(address, req.serial, outcome.code, outcome.message);
      throw REFUSED;
    }
    guard.refund(address, 2);
    const d = outcome.device;
    const { token, expiresAt } = await issueDeviceToken(ctx, d);
    return c.json({ deviceId: d.id, token, tokenExpiresAt: expiresAt, registryProxy: ctx.config.registryProxy, jwks: ctx.keys.jwks() });
  });

  return app;
}
