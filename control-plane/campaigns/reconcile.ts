import { sql } from 'drizzle-orm';
import type { ControlPlaneContext } from '../context.js';
import { reconcileReports } from './membership.js';
import type { Reader } from './store.js';

/**
 * The campaign tick's catch-up on reports (membership.ts reconcileReports), reading only what
 * changed since its last pass (issue 17: the join over every in-flight member was 0.8-2 s per
 * 40 s of fleet-sim's last wave, 100,000 members a second).
 *
 * A member's outcome moves on its report, or on the member itself changing. Reports: every accepted
 * report adds a report_history row, whose ids only grow in commit order, so the devices reported
 * since the last pass are those with ids above its mark. Members: a member becomes `assigned` only
 * in a wave's assignment; given a new document, its reports about it come after, above the mark; but
 * one whose release and sequence stayed may already have a matching report, and an assignment with
 * such a member counts itself on its campaign's row (`assignments`, 0116; executor.ts). So a full
 * pass runs first, after a takeover (`reset`), and whenever a running or paused campaign's
 * assignments or status moved; otherwise only the reported devices are read.
 *
 * A pass reads the reports up to the newest id the pass before it saw, not up to now: the newer
 * ones are the event path's (scheduler.ts recordReports, in whichever process took the report),
 * which decides them within a batch. Read at once, every report that came in while the event path
 * was deciding it was decided twice, the second time with a write of its own in the lease holder's
 * turn: a quarter of the outcomes (5,226 of 20,000) in fleet-sim at 20,000 devices (SCALING.md).
 * A report the event path missed (a crash between its commit and its event) is decided a pass later.
 */
export interface ReportReconciler {
  /** One pass: the ids of the campaigns whose members moved. */
  pass(): Promise<string[]>;
  /** The next pass reads everything (this process just took over driving). */
  reset(): void;
}

/** The newest report history id: a mark read before the data it bounds. */
export async function reportMark(db: Reader): Promise<number> {
  const [r] = await db.all<{ top: number | null }>(sql`SELECT max(id) AS top FROM report_history`);
  return Number(r?.top ?? 0);
}

export function reportReconciler(ctx: Pick<ControlPlaneContext, 'db' | 'write' | 'now'>): ReportReconciler {
  /** Reports up to `mark` are decided; those up to `seen` (the last pass's newest) are read next. */
  let mark: number | null = null;
  let seen = 0;
  let campaigns = '';
  return {
    reset() {
      mark = null;
    },
    async pass() {
      // Both read before the members and reports: what commits after is above the mark or changes the rows.
      const top = await reportMark(ctx.db);
      const rows = await ctx.db.all<{ id: string; status: string; assignments: number }>(sql`
        SELECT id, status, assignments FROM campaigns WHERE status IN ('running', 'paused') ORDER BY id`);
      const now = rows.map((r) => `${r.id}:${r.status}:${r.assignments}`).join(',');
      const full = mark === null || now !== campaigns;
      // A full pass decides every report up to `top`; a range pass those up to the last pass's newest.
      const upTo = full ? top : Math.min(seen, top);
      const changed = full ? await reconcileReports(ctx) : upTo > (mark as number) ? await reconcileReports(ctx, { after: mark as number, upTo }) : [];
      mark = upTo;
      seen = top;
      campaigns = now;
      return changed;
    },
  };
}
