import type { SQL } from 'drizzle-orm';
import { placeholderRows as rows, Statement } from '../db/statement.js';

/*
 * The two statements an enrollment batch writes for all of its rows (enroll-writer.ts), with their
 * text made by repeating one row's placeholders and their arguments in one array (issue 17; the
 * Statement class, shared with the report and sightings batches, says why).
 */

/** What the UPDATE takes of each enrollment: the row as read and checked, and the request. */
export interface EnrollValues {
  id: string;
  status: string;
  publicKey: string;
  tokenEpoch: number;
  issuedAt: number;
  now: number;
  encryptionKey: string | null;
}

/**
 * Enrolls every device still as it was read and checked (the single-use condition on the challenge
 * included), returning the ids it enrolled. SET sees the row before the update: enrolled_at is set
 * by the first enrollment only, and a renewal without a key keeps the one registered.
 */
export function enrollUpdate(values: EnrollValues[]): SQL {
  const args: unknown[] = [];
  for (const v of values) args.push(v.id, v.status, v.publicKey, v.tokenEpoch, v.issuedAt, v.now, v.encryptionKey);
  return new Statement(
    `WITH v(id, status, public_key, token_epoch, issued_at, now, encryption_key) AS (VALUES ${rows('(?, ?, ?, ?, ?, ?, ?)', values.length)})
    UPDATE devices SET status = 'enrolled', enrolled_at = CASE WHEN devices.status = 'registered' THEN v.now ELSE devices.enrolled_at END,
      enroll_challenge_at = v.issued_at, encryption_key = coalesce(v.encryption_key, devices.encryption_key)
    FROM v WHERE devices.id = v.id AND devices.status = v.status AND devices.public_key = v.public_key AND devices.token_epoch = v.token_epoch
      AND (devices.enroll_challenge_at IS NULL OR devices.enroll_challenge_at < v.issued_at)
    RETURNING devices.id`,
    args,
  );
}

/** One audit row: at, actor, action, target, before, after (context.ts's audit, in bulk). */
export type AuditValues = [number, string, string, string, string | null, string | null];

export function auditInsert(entries: AuditValues[]): SQL {
  return new Statement(`INSERT INTO audit_log (at, actor, action, target, before, after) VALUES ${rows('(?, ?, ?, ?, ?, ?)', entries.length)}`, entries.flat());
}
