import { sql } from 'drizzle-orm';
import { Hono, type Context } from 'hono';
import { importPublicKey, verifyBytes } from '../../protocol/keys.js';
import { enrollChallengeRequest, enrollProofBytes, enrollRequest } from '../../protocol/device.js';
import { issueDeviceToken } from './enroll-token.js';
import type { ControlPlaneContext, Tx } from '../context.js';
import { issueChallenge, openChallenge } from './enroll-challenge.js';
import { publishEvent } from '../webhooks/outbox.js';
import { errorBody, HttpError, jsonBody, type AppEnv } from '../http.js';
import { clientKey, EnrollGuard } from './enroll-guard.js';
import { checkClientCertificate } from './client-cert.js';
import { ENROLLING_COLUMNS, enrollingDeviceOf, type EnrollingDevice } from '../db/point-reads.js';

type Refusal = { status: 401 | 403; code: string; message: string };

/**
 * Every check of an enrollment, in the order they have always been made; null when it may enroll.
 * `verified` checks the proof against a public key (the caller caches the answer per key).
 */
export function refusalOf(d: EnrollingDevice | undefined, serial: string, issuedAt: number | null, now: number, ttlMs: number, verified: (publicKey: string) => boolean): Refusal | null {
  if (!d) return { status: 401, code: 'unknown-serial', message: `serial ${serial} was not imported` };
  if (d.status === 'revoked') return { status: 403, code: 'device-revoked', message: `device ${serial} is revoked` };
  if (issuedAt === null) return { status: 401, code: 'unknown-challenge', message: 'challenge was not issued for this serial; request a new one' };
  if (d.enrollChallengeAt !== null && issuedAt <= d.enrollChallengeAt) return { status: 401, code: 'replayed-challenge', message: 'challenge was already used (or one issued after it was); request a new one' };
  if (issuedAt + ttlMs <= now) return { status: 401, code: 'stale-challenge', message: `challenge expired at ${new Date(issuedAt + ttlMs).toISOString()}; request a new one` };
  if (!verified(d.publicKey)) return { status: 401, code: 'wrong-key', message: `signature does not verify with the public key recorded for ${serial}` };
  return null;
}

/**
 * What every refused enrollment answers, whatever the reason: telling an unknown serial from a
 * wrong key or a revoked device would let anyone learn which serials were imported. The reason is
 * in the log and the audit log.
 */
const REFUSED = new HttpError(401, 'enrollment-refused', 'enrollment refused: request a new challenge and sign it with the key the manufacturer recorded for this serial');

/**
 * The one write of an enrollment (it joins the group commit of db/write-queue.ts). Single use: the
 * UPDATE enrolls only if the row is still what was checked and no challenge as new as this one
 * was used; if another request got there first, the row is read again and every check made again
 * on it (a revocation, a re-import or a replay meanwhile is refused).
 */
async function enrollIn(ctx: ControlPlaneContext, tx: Tx, read: EnrollingDevice, req: { serial: string; encryptionKey?: string; issuedAt: number; now: number }, verified: (publicKey: string) => boolean): Promise<Refusal | EnrollingDevice> {
  const { issuedAt, now } = req;
  let d = read;
  for (;;) {
    const first = d.status === 'registered';
    const changed = await tx.run(sql`UPDATE devices SET status = 'enrolled', enrolled_at = ${first ? now : sql`enrolled_at`}, enroll_challenge_at = ${issuedAt},
      encryption_key = ${req.encryptionKey ?? d.encryptionKey}
      WHERE id = ${d.id} AND status = ${d.status} AND public_key = ${d.publicKey} AND token_epoch = ${d.tokenEpoch}
        AND (enroll_challenge_at IS NULL OR enroll_challenge_at < ${issuedAt})`);
    if (changed.rowsAffected !== 1) {
      const again = enrollingDeviceOf((await tx.values(sql`SELECT ${sql.raw(ENROLLING_COLUMNS)} FROM devices WHERE serial = ${req.serial}`))[0]);
      const refused = refusalOf(again, req.serial, issuedAt, now, ctx.config.challengeTtlMs, verified);
      if (refused) return refused;
      d = again as EnrollingDevice;
      continue;
    }
    // The proof covered the encryption key: a device enrolled before secrets registers it at its next renewal.
    if (req.encryptionKey && req.encryptionKey !== d.encryptionKey) {
      await ctx.audit(tx, { actor: `device:${d.id}`, action: 'device.encryption-key', target: req.serial, before: d.encryptionKey ? { encryptionKey: d.encryptionKey } : undefined, after: { encryptionKey: req.encryptionKey } });
    }
    await ctx.audit(tx, { actor: `device:${d.id}`, action: first ? 'device.enroll' : 'device.renew', target: req.serial });
    if (first) {
      const id = d.id;
      ctx.afterCommit(tx, () => ctx.events.emit('device-enrolled', { deviceId: id }));
      await publishEvent(tx, now, 'device.enrolled', `devices/${d.serial}`, { deviceId: d.id, serial: d.serial, labels: JSON.parse(d.labels) as Record<string, string> });
    }
    return { ...d, status: 'enrolled' };
  }
}

const guards = new WeakMap<ControlPlaneContext, EnrollGuard>();

/** Writes the refusals counted but not yet audited (at shutdown). */
export async function closeEnrollment(ctx: ControlPlaneContext): Promise<void> {
  await guards.get(ctx)?.close();
}

/**
 * The second enrollment factor: possession of the private key whose public half the operator
 * imported. A challenge enrolls at most once, for the serial it was issued to, and expires quickly
 * (`challengeTtlMs`); a refused attempt does not spend it (it proved nothing and changes nothing).
 */
export function enrollmentRoutes(ctx: ControlPlaneContext) {
  const app = new Hono<AppEnv>();
  const guard = new EnrollGuard({
    burst: ctx.config.enrollBurst,
    perSecond: ctx.config.enrollPerSecond,
    budget: ctx.enrollBudget,
    windowMs: ctx.config.refusalAuditWindowMs,
    audit: (r) =>
      ctx
        .write((tx) => ctx.audit(tx, { actor: `address:${r.address}`, action: 'device.enroll.refused', target: r.serial, after: { code: r.code, reason: r.reason, address: r.address, ...r.window } }))
        .catch((err: unknown) => ctx.log.error({ err }, 'refused enrollment not audited')),
  });
  guards.set(ctx, guard);
  const challengeKey = ctx.vault.derive('enroll-challenge');
  const addressOf = (c: Context<AppEnv>) => clientKey((c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming?.socket?.remoteAddress);

  // Anyone may call these routes: each address has a budget, and a device that enrolls gets its cost back.
  app.use('*', async (c, next) => {
    const taken = await guard.take(addressOf(c));
    if (!taken.ok) {
      c.var.log.warn({ address: addressOf(c), retryAfterSec: taken.retryAfterSec }, 'enrollment rate-limited');
      return c.json(errorBody('rate-limited', `too many enrollment requests from this address; try again in ${taken.retryAfterSec} s`), 429, { 'Retry-After': String(taken.retryAfterSec) });
    }
    await next();
  });

  // No read, no write: the challenge carries its issue time under a MAC (enroll-challenge.ts). Every
  // serial, imported or not, gets one alike, so the route tells no one which serials exist.
  app.post('/challenge', async (c) => {
    const { serial } = await jsonBody(c, enrollChallengeRequest);
    checkClientCertificate(c, serial);
    const now = ctx.now().getTime();
    return c.json({ challenge: issueChallenge(challengeKey, serial, now), expiresAt: new Date(now + ctx.config.challengeTtlMs).toISOString() });
  });

  app.post('/', async (c) => {
    const req = await jsonBody(c, enrollRequest);
    checkClientCertificate(c, req.serial);
    const now = ctx.now().getTime();
    const proof = enrollProofBytes(req.serial, req.challenge, req.encryptionKey);
    const issuedAt = openChallenge(challengeKey, req.serial, req.challenge, now);
    // Checked before the write: CPU spent inside it would hold the database's one write lock, which
    // every worker (and every control plane on the database) waits for.
    const verdicts = new Map<string, boolean>();
    const verified = (publicKey: string) => {
      let v = verdicts.get(publicKey);
      if (v === undefined) verdicts.set(publicKey, (v = verifyBytes(importPublicKey(publicKey), proof, req.signature)));
      return v;
    };
    const read = await ctx.reads.enrollingDevice(req.serial);
    const early = refusalOf(read, req.serial, issuedAt, now, ctx.config.challengeTtlMs, verified);
    const outcome = early ?? (await ctx.write((tx) => enrollIn(ctx, tx, read as EnrollingDevice, { ...req, issuedAt: issuedAt as number, now }, verified)));
    const address = addressOf(c);
    if ('code' in outcome) {
      c.var.log.warn({ serial: req.serial, address, code: outcome.code, reason: outcome.message }, 'enrollment refused');
      guard.refused(address, req.serial, outcome.code, outcome.message);
      throw REFUSED;
    }
    guard.refund(address, 2);
    const d = outcome;
    const { token, expiresAt } = issueDeviceToken(ctx, d);
    return c.json({ deviceId: d.id, token, tokenExpiresAt: expiresAt, registryProxy: ctx.config.registryProxy, jwks: ctx.keys.jwks() });
  });

  return app;
}
