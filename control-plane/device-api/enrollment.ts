import type { Socket } from 'node:net';
import { Hono, type Context } from 'hono';
import type { Logger } from '../../common/log.js';
import { importPublicKey, verifyBytes } from '../../protocol/keys.js';
import { enrollChallengeRequest, enrollProofBytes, enrollRequest } from '../../protocol/device.js';
import { issueDeviceToken } from './device-token.js';
import type { ControlPlaneContext } from '../context.js';
import { issueChallenge, noncePool, openChallenge } from './enroll-challenge.js';
import { errorBody, HttpError, jsonBody, type AppEnv } from '../http.js';
import { clientKey, EnrollGuard } from './enroll-guard.js';
import { checkSocketCertificate } from './client-cert.js';
import type { EnrollingDevice } from '../db/point-reads.js';
import { EnrollWriter, refusalOf } from './enroll-writer.js';

/**
 * What every refused enrollment answers, whatever the reason: telling an unknown serial from a
 * wrong key or a revoked device would let anyone learn which serials were imported. The reason is
 * in the log and the audit log.
 */
const REFUSED = new HttpError(401, 'enrollment-refused', 'enrollment refused: request a new challenge and sign it with the key the manufacturer recorded for this serial');

/** Who calls, as both ways of serving the routes see it (Hono here, node:http in enroll-direct.ts). */
export interface EnrollCaller {
  /** The socket's remote address. */
  address: string | undefined;
  /** For the optional device client certificate (client-cert.ts). */
  socket: Socket | undefined;
  /** The request's logger (made when first needed: a successful enrollment logs nothing). */
  log(): Logger;
}

/** A route's answer: JSON, with its status and any extra header. Refusals are thrown as HttpError. */
export interface EnrollAnswer {
  status: 200 | 429;
  body: unknown;
  headers?: Record<string, string>;
}

/**
 * The second enrollment factor: possession of the private key whose public half the operator
 * imported. A challenge enrolls at most once, for the serial it was issued to, and expires quickly
 * (`challengeTtlMs`); a refused attempt does not spend it (it proved nothing and changes nothing).
 * One per control-plane context (`enrollmentOf`): its budget, batch writer and nonce pool are shared
 * by the Hono routes and the node:http ones.
 */
export class Enrollment {
  private readonly guard: EnrollGuard;
  private readonly writer: EnrollWriter;
  private readonly challengeKey: Buffer;
  private readonly nonce = noncePool();

  constructor(private readonly ctx: ControlPlaneContext) {
    this.guard = new EnrollGuard({
      burst: ctx.config.enrollBurst,
      perSecond: ctx.config.enrollPerSecond,
      budget: ctx.enrollBudget,
      windowMs: ctx.config.refusalAuditWindowMs,
      audit: (r) =>
        ctx
          .write((tx) => ctx.audit(tx, { actor: `address:${r.address}`, action: 'device.enroll.refused', target: r.serial, after: { code: r.code, reason: r.reason, address: r.address, ...r.window } }))
          .catch((err: unknown) => ctx.log.error({ err }, 'refused enrollment not audited')),
    });
    this.writer = new EnrollWriter(ctx);
    this.challengeKey = ctx.vault.derive('enroll-challenge');
  }

  /** Anyone may call these routes: each address has a budget (the 429 when it is spent), and a device that enrolls gets its cost back. */
  admit(caller: EnrollCaller): EnrollAnswer | null | Promise<EnrollAnswer | null> {
    const taken = this.guard.take(clientKey(caller.address));
    return taken instanceof Promise ? taken.then((t) => this.limited(caller, t)) : this.limited(caller, taken);
  }

  private limited(caller: EnrollCaller, taken: Awaited<ReturnType<EnrollGuard['take']>>): EnrollAnswer | null {
    if (taken.ok) return null;
    caller.log().warn({ address: clientKey(caller.address), retryAfterSec: taken.retryAfterSec }, 'enrollment rate-limited');
    return { status: 429, body: errorBody('rate-limited', `too many enrollment requests from this address; try again in ${taken.retryAfterSec} s`), headers: { 'Retry-After': String(taken.retryAfterSec) } };
  }

  // No read, no write: the challenge carries its issue time under a MAC (enroll-challenge.ts). Every
  // serial, imported or not, gets one alike, so the route tells no one which serials exist.
  challenge(caller: EnrollCaller, { serial }: { serial: string }): EnrollAnswer {
    this.checkCertificate(caller, serial);
    const now = this.ctx.now().getTime();
    return { status: 200, body: { challenge: issueChallenge(this.challengeKey, serial, now, this.nonce()), expiresAt: new Date(now + this.ctx.config.challengeTtlMs).toISOString() } };
  }

  async enroll(caller: EnrollCaller, req: { serial: string; challenge: string; signature: string; encryptionKey?: string }): Promise<EnrollAnswer> {
    const ctx = this.ctx;
    this.checkCertificate(caller, req.serial);
    const now = ctx.now().getTime();
    const proof = enrollProofBytes(req.serial, req.challenge, req.encryptionKey);
    const issuedAt = openChallenge(this.challengeKey, req.serial, req.challenge, now);
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
    const outcome = early ?? (await this.writer.submit(read as EnrollingDevice, { serial: req.serial, encryptionKey: req.encryptionKey, issuedAt: issuedAt as number, now }, verified));
    const address = clientKey(caller.address);
    if ('code' in outcome) {
      caller.log().warn({ serial: req.serial, address, code: outcome.code, reason: outcome.message }, 'enrollment refused');
      this.guard.refused(address, req.serial, outcome.code, outcome.message);
      throw REFUSED;
    }
    this.guard.refund(address, 2);
    const { token, expiresAt } = issueDeviceToken(ctx, outcome);
    return { status: 200, body: { deviceId: outcome.id, token, tokenExpiresAt: expiresAt, registryProxy: ctx.config.registryProxy, jwks: ctx.keys.jwks() } };
  }

  /** Writes the refusals counted but not yet audited (at shutdown). */
  close(): Promise<void> {
    return this.guard.close();
  }

  private checkCertificate(caller: EnrollCaller, serial: string): void {
    if (this.ctx.config.deviceClientCerts) checkSocketCertificate(caller.socket, serial);
  }
}

const enrollments = new WeakMap<ControlPlaneContext, Enrollment>();

/** The context's one Enrollment (made on first use). */
export function enrollmentOf(ctx: ControlPlaneContext): Enrollment {
  let e = enrollments.get(ctx);
  if (!e) enrollments.set(ctx, (e = new Enrollment(ctx)));
  return e;
}

/** Writes the refusals counted but not yet audited (at shutdown). */
export async function closeEnrollment(ctx: ControlPlaneContext): Promise<void> {
  await enrollments.get(ctx)?.close();
}

/**
 * The routes as Hono serves them: what `app.fetch` answers, and the routes the control plane
 * declares. A running control plane answers them on node:http first (enroll-direct.ts).
 */
export function enrollmentRoutes(ctx: ControlPlaneContext) {
  const app = new Hono<AppEnv>();
  const enrollment = enrollmentOf(ctx);
  const callerOf = (c: Context<AppEnv>): EnrollCaller => {
    const socket = (c.env as { incoming?: { socket?: Socket } } | undefined)?.incoming?.socket;
    return { address: socket?.remoteAddress, socket, log: () => c.var.log };
  };
  const answer = (c: Context<AppEnv>, a: EnrollAnswer) => c.json(a.body, a.status, a.headers);

  app.use('*', async (c, next) => {
    const limited = await enrollment.admit(callerOf(c));
    if (limited) return answer(c, limited);
    await next();
  });
  app.post('/challenge', async (c) => answer(c, enrollment.challenge(callerOf(c), await jsonBody(c, enrollChallengeRequest))));
  app.post('/', async (c) => answer(c, await enrollment.enroll(callerOf(c), await jsonBody(c, enrollRequest))));
  return app;
}
