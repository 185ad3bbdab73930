import { sql } from 'drizzle-orm';
import { reportMark } from './reconcile.js';
import type { Reader } from './store.js';
import { KEPT, type ByteTallies, type ByteTotals, type Counted, type Tally } from './byte-tallies.js';

/**
 * The bytes a campaign's update moved, for its status: over the members given a document
 * (assigned, succeeded, failed, rolled-back, left), the device's report when it is about that
 * document. Summed over every member on each read, this was the top statement of the whole server
 * in fleet-sim at 100,000 devices (130-230 ms a call, issue 17). Each process now keeps, per
 * campaign, what each member counts for and the report history id it is current to, and on a read
 * recounts only the devices that reported since (report_history ids grow in commit order, one row
 * per accepted report). Members are counted again in full when an assignment since brought in a
 * member that may already hold a report about its document (the campaign's `assignments`, 0116,
 * bumped only then: executor.ts), or when the campaign's members grew or shrank in number (a late
 * joiner, a removed device). A member assigned a new document is caught up on: its reports about it
 * come after the assignment, above the mark.
 */
const COUNTED_STATES = sql`cd.state IN ('assigned', 'succeeded', 'failed', 'rolled-back', 'left')`;

type Row = { device_id: string; done: number | null; full: number | null; delta: number | null; counted: number };

function add(t: Tally, id: string, c: Counted, sign: 1 | -1): void {
  t.totals.moved += sign * c.done;
  t.totals.full += sign * c.full;
  t.totals.viaDelta += sign * c.delta;
  t.totals.devices += sign;
  if (sign === 1) t.byDevice.set(id, c);
  else t.byDevice.delete(id);
}

const countedOf = (r: Row): Counted => ({ done: Number(r.done ?? 0), full: Number(r.full ?? 0), delta: Number(r.delta ?? 0) });

async function fullTally(db: Reader, campaignId: string, generation: string, mark: number): Promise<Tally> {
  const t: Tally = { generation, mark, byDevice: new Map(), totals: { moved: 0, full: 0, devices: 0, viaDelta: 0 } };
  // One row, one string: 100,000 rows made into objects by the driver took seconds; the string
  // and its split take tens of ms. Members still pending were never given a desired sequence (no
  // report can match them): not read (without INDEXED BY, SQLite walked every member through the primary key).
  const [row] = await db.all<{ members: string | null }>(sql`
    SELECT group_concat(cd.device_id || char(31) || r.bytes_done || char(31) || coalesce(r.bytes_full, r.bytes_total) || char(31) || coalesce(r.bytes_delta, 0), char(31)) AS members
    FROM campaign_devices cd INDEXED BY campaign_devices_progress JOIN reported r ON r.device_id = cd.device_id AND r.desired_sequence = cd.desired_sequence
    WHERE cd.campaign_id = ${campaignId} AND ${COUNTED_STATES}`);
  // Fields apart by the unit separator (no device id holds a control character); figures as SQLite prints them.
  const parts = row?.members ? row.members.split('\x1f') : [];
  for (let i = 0; i + 3 < parts.length; i += 4) add(t, parts[i], { done: Number(parts[i + 1]), full: Number(parts[i + 2]), delta: Number(parts[i + 3]) }, 1);
  return t;
}

/** Recounts the devices that reported in (t.mark, mark]. */
async function catchUp(db: Reader, campaignId: string, t: Tally, mark: number): Promise<void> {
  const rows = await db.all<Row>(sql`
    SELECT h.device_id, r.bytes_done AS done, coalesce(r.bytes_full, r.bytes_total) AS full, r.bytes_delta AS delta, r.device_id IS NOT NULL AS counted
    FROM (SELECT DISTINCT device_id FROM report_history WHERE id > ${t.mark} AND id <= ${mark}) h
    LEFT JOIN campaign_devices cd ON cd.campaign_id = ${campaignId} AND cd.device_id = h.device_id AND ${COUNTED_STATES}
    LEFT JOIN reported r ON r.device_id = cd.device_id AND r.desired_sequence = cd.desired_sequence`);
  for (const r of rows) {
    const before = t.byDevice.get(r.device_id);
    if (before) add(t, r.device_id, before, -1);
    if (Number(r.counted)) add(t, r.device_id, countedOf(r), 1);
  }
  t.mark = mark;
}

/**
 * The campaign's byte totals, kept in `tallies` (one per database: the caller's context). `generation` names its members as the caller read them: the campaign
 * row's `assignments` and how many members it has (service.ts campaignStatus).
 */
export async function campaignBytes(db: Reader, tallies: ByteTallies, campaignId: string, generation: string): Promise<ByteTotals> {
  // Read before the members and reports: whatever commits after is above it, and read next time.
  const mark = await reportMark(db);
  const perDb = tallies.byCampaign;
  let t = perDb.get(campaignId);
  if (!t || t.generation !== generation) t = await fullTally(db, campaignId, generation, mark);
  else if (mark > t.mark) await catchUp(db, campaignId, t, mark);
  // Most recently read last; the oldest goes beyond KEPT.
  perDb.delete(campaignId);
  perDb.set(campaignId, t);
  for (const id of perDb.keys()) {
    if (perDb.size <= KEPT) break;
    perDb.delete(id);
  }
  return { ...t.totals };
}
