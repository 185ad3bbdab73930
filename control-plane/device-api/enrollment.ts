import { Hono, type Context } from 'hono';
import { importPublicKey, verifyBytes } from '../../protocol/keys.js';
import { enrollChallengeRequest, enrollProofBytes, enrollRequest } from '../../protocol/device.js';
import { issueDeviceToken } from './device-token.js';
import type { ControlPlaneContext } from '../context.js';
import { issueChallenge, noncePool, openChallenge } from './enroll-challenge.js';
import { errorBody, HttpError, jsonBody, type AppEnv } from '../http.js';
import { clientKey, EnrollGuard } from './enroll-guard.js';
import { checkClientCertificate } from './client-cert.js';
import type { EnrollingDevice } from '../db/point-reads.js';
import { EnrollWriter, refusalOf } from './enroll-writer.js';

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
  const writer = new EnrollWriter(ctx);
  const challengeKey = ctx.vault.derive('enroll-challenge');
  const nonce = noncePool();
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
    return c.json({ challenge: issueChallenge(challengeKey, serial, now, nonce()), expiresAt: new Date(now + ctx.config.challengeTtlMs).toISOString() });
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
    const outcome = early ?? (await writer.submit(read as EnrollingDevice, { serial: req.serial, encryptionKey: req.encryptionKey, issuedAt: issuedAt as number, now }, verified));
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
