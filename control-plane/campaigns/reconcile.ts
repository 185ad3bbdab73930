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
  let mark: number | null = null;
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
      const seen = rows.map((r) => `${r.id}:${r.status}:${r.assignments}`).join(',');
      const full = mark === null || seen !== campaigns;
      const changed = full ? await reconcileReports(ctx) : top > (mark as number) ? await reconcileReports(ctx, { after: mark as number, upTo: top }) : [];
      mark = top;
      campaigns = seen;
      return changed;
    },
  };
}
