import { sql } from 'drizzle-orm';
import { actorName, auditField, type AuditEntry, type ControlPlaneContext, type Tx } from '../context.js';
import { ENROLLING_COLUMNS, enrollingDeviceOf, type EnrollingDevice } from '../db/point-reads.js';
import { publishEventTo, readWebhooks, webhooksWanting } from '../webhooks/outbox.js';
import { BatchedWrites } from '../db/batched-writes.js';
import { auditInsert, enrollUpdate, type AuditValues, type EnrollValues } from './enroll-statements.js';

export type Refusal = { status: 401 | 403; code: string; message: string };

/** What an enrollment's write needs: the challenge's issue time and the time the request came. */
export interface EnrollRequest {
  serial: string;
  encryptionKey?: string;
  issuedAt: number;
  now: number;
}

/** Checks the proof against a public key (the caller caches the answer per key). */
export type Verified = (publicKey: string) => boolean;

/**
 * Every check of an enrollment, in the order they have always been made; null when it may enroll.
 */
export function refusalOf(d: EnrollingDevice | undefined, serial: string, issuedAt: number | null, now: number, ttlMs: number, verified: Verified): Refusal | null {
  if (!d) return { status: 401, code: 'unknown-serial', message: `serial ${serial} was not imported` };
  if (d.status === 'revoked') return { status: 403, code: 'device-revoked', message: `device ${serial} is revoked` };
  if (issuedAt === null) return { status: 401, code: 'unknown-challenge', message: 'challenge was not issued for this serial; request a new one' };
  if (d.enrollChallengeAt !== null && issuedAt <= d.enrollChallengeAt) return { status: 401, code: 'replayed-challenge', message: 'challenge was already used (or one issued after it was); request a new one' };
  if (issuedAt + ttlMs <= now) return { status: 401, code: 'stale-challenge', message: `challenge expired at ${new Date(issuedAt + ttlMs).toISOString()}; request a new one` };
  if (!verified(d.publicKey)) return { status: 401, code: 'wrong-key', message: `signature does not verify with the public key recorded for ${serial}` };
  return null;
}

interface Pending {
  read: EnrollingDevice;
  req: EnrollRequest;
  verified: Verified;
}

/** Enrollments in one write at most: 7 parameters each stays far below SQLite's limit of 32,766. */
const MAX_BATCH = 256;

type Ctx = Pick<ControlPlaneContext, 'write' | 'events' | 'now' | 'batches'> & { config: Pick<ControlPlaneContext['config'], 'challengeTtlMs'> };

/**
 * What an enrollment's write takes over IPC (plain data): the device as read and checked, and the
 * request. The proof was verified against `read.publicKey` before (enrollment.ts); a row whose key
 * changed since is refused (wrong-key), never verified against a key the proof was not checked with.
 */
export interface EnrollItem {
  read: EnrollingDevice;
  req: EnrollRequest;
}

/** What the write decided: refused, or enrolled (`first`: its first enrollment, which the campaign engine hears of). */
export type EnrollWritten = Refusal | { device: EnrollingDevice; first: boolean };

/**
 * Enrollments, written in batches (issue 17) through db/batched-writes.ts, as reports are: the
 * enrollments that arrive while a commit is in flight go into the next one as one write, not a
 * savepoint and four statements each. One UPDATE enrolls every device of the batch still as it
 * was read and checked (the single-use condition on the challenge included); one INSERT writes
 * their audit rows; the webhooks are read once. A device whose row changed since it was read (a
 * revocation, a re-import, another challenge meanwhile, or a second request for it in the same
 * batch) is decided alone afterwards, read again and checked again. Each request is answered
 * after the commit that holds its write. The writer process of `--workers N` runs this for every worker.
 */
export function localEnrollWrites(ctx: Pick<Ctx, 'write' | 'config' | 'now'>): (item: EnrollItem, verified?: Verified) => Promise<EnrollWritten> {
  const batches = new BatchedWrites<Pending, EnrollWritten>(ctx, async (sp, batch) => ({ outcomes: await writeBatch(ctx, sp, batch), announce: () => undefined }), MAX_BATCH);
  // Over IPC the proof does not come along: only the key it was verified with counts.
  return ({ read, req }, verified = (publicKey) => publicKey === read.publicKey) => batches.submit({ read, req, verified });
}

/** A worker's enrollments: written here, or with `--workers N` by the one writer process for all (cluster-batches.ts). */
export class EnrollWriter {
  private readonly write: (item: EnrollItem, verified: Verified) => Promise<EnrollWritten>;

  constructor(private readonly ctx: Ctx) {
    const remote = ctx.batches;
    this.write = remote ? (item) => remote.submit<EnrollWritten>('enroll', item) : localEnrollWrites(ctx);
  }

  /** The device as enrolled, once committed; or why it may not enroll (checked again on the row as it is now, with `verified` in this process). */
  async submit(read: EnrollingDevice, req: EnrollRequest, verified: Verified): Promise<Outcome> {
    const o = await this.write({ read, req }, verified);
    if ('code' in o) return o;
    // After the commit: the campaign engine learns of each first enrollment.
    if (o.first) this.ctx.events.emit('device-enrolled', { deviceId: o.device.id });
    return { ...o.device, status: 'enrolled' };
  }
}

type Outcome = Refusal | EnrollingDevice;

interface Done {
  p: Pending;
  d: EnrollingDevice;
  first: boolean;
}

async function writeBatch(ctx: Pick<Ctx, 'config' | 'now'>, tx: Tx, batch: Pending[]): Promise<EnrollWritten[]> {
  // The first request for each device goes into the one UPDATE; a second one for it is decided after, on the row the first left.
  const firsts = new Map<string, number>();
  batch.forEach((p, i) => firsts.has(p.read.id) || firsts.set(p.read.id, i));
  const values = [...firsts.values()].map((i): EnrollValues => {
    const { read: d, req } = batch[i];
    return { id: d.id, status: d.status, publicKey: d.publicKey, tokenEpoch: d.tokenEpoch, issuedAt: req.issuedAt, now: req.now, encryptionKey: req.encryptionKey ?? null };
  });
  const updated = await tx.values<[string]>(enrollUpdate(values));
  const enrolledNow = new Set(updated.map((r) => String(r[0])));
  const outcomes: EnrollWritten[] = new Array<EnrollWritten>(batch.length);
  const done: Done[] = [];
  for (let i = 0; i < batch.length; i++) {
    const p = batch[i];
    if (firsts.get(p.read.id) === i && enrolledNow.has(p.read.id)) {
      const first = p.read.status === 'registered';
      done.push({ p, d: p.read, first });
      outcomes[i] = { device: p.read, first };
    }
  }
  for (let i = 0; i < batch.length; i++) {
    if (outcomes[i]) continue;
    const p = batch[i];
    const o = await enrollAlone(ctx, tx, p);
    outcomes[i] = 'code' in o ? o : { device: o.d, first: o.first };
    if (!('code' in o)) done.push({ p, ...o });
  }
  await audit(ctx, tx, done);
  const hooks = await readWebhooks(tx);
  const targets = webhooksWanting(hooks, 'device.enrolled');
  for (const { p, d, first } of done) {
    if (!first) continue;
    await publishEventTo(tx, p.req.now, 'device.enrolled', `devices/${d.serial}`, { deviceId: d.id, serial: d.serial, labels: JSON.parse(d.labels) as Record<string, string> }, targets);
  }
  return outcomes;
}

/**
 * One enrollment whose row was not as read: read again and every check made again on it (a
 * revocation, a re-import or a replay meanwhile is refused), then the same conditional UPDATE.
 */
async function enrollAlone(ctx: Pick<Ctx, 'config'>, tx: Tx, p: Pending): Promise<Refusal | { d: EnrollingDevice; first: boolean }> {
  const { req } = p;
  for (;;) {
    const d = enrollingDeviceOf((await tx.values(sql`SELECT ${sql.raw(ENROLLING_COLUMNS)} FROM devices WHERE serial = ${req.serial}`))[0]);
    const refused = refusalOf(d, req.serial, req.issuedAt, req.now, ctx.config.challengeTtlMs, p.verified);
    if (refused) return refused;
    const row = d as EnrollingDevice;
    const first = row.status === 'registered';
    const changed = await tx.run(sql`UPDATE devices SET status = 'enrolled', enrolled_at = ${first ? req.now : sql`enrolled_at`}, enroll_challenge_at = ${req.issuedAt},
      encryption_key = ${req.encryptionKey ?? row.encryptionKey}
      WHERE id = ${row.id} AND status = ${row.status} AND public_key = ${row.publicKey} AND token_epoch = ${row.tokenEpoch}
        AND (enroll_challenge_at IS NULL OR enroll_challenge_at < ${req.issuedAt})`);
    if (changed.rowsAffected === 1) return { d: row, first };
  }
}

/** The audit rows of the batch in one INSERT, in arrival order; a new encryption key (covered by the proof) gets its own row. */
async function audit(ctx: Pick<Ctx, 'now'>, tx: Tx, done: Done[]): Promise<void> {
  if (!done.length) return;
  const entries: AuditEntry[] = [];
  for (const { p, d, first } of done) {
    const actor = `device:${d.id}`;
    const key = p.req.encryptionKey;
    // A device enrolled before secrets registers its key at its next renewal.
    if (key && key !== d.encryptionKey) entries.push({ actor, action: 'device.encryption-key', target: d.serial, before: d.encryptionKey ? { encryptionKey: d.encryptionKey } : undefined, after: { encryptionKey: key } });
    entries.push({ actor, action: first ? 'device.enroll' : 'device.renew', target: d.serial });
  }
  const at = ctx.now().getTime();
  await tx.run(auditInsert(entries.map((e): AuditValues => [at, actorName(e.actor), e.action, e.target, auditField(e.before), auditField(e.after)])));
}
