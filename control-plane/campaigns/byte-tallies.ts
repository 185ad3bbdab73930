/**
 * What campaigns/bytes.ts keeps between status reads, on the control plane's context
 * (context.ts `byteTallies`): a file of its own with no imports, so the context can hold it
 * without importing the campaign engine (which imports the context).
 */
export interface ByteTotals {
  moved: number;
  full: number;
  devices: number;
  viaDelta: number;
}

export interface Counted {
  done: number;
  full: number;
  delta: number;
}

export interface Tally {
  /** The members' generation the tally counted: the campaign's assignments and members given a document. */
  generation: string;
  mark: number;
  byDevice: Map<string, Counted>;
  totals: ByteTotals;
}

/** Campaigns tallied per context (the console may watch a few; each costs a map of its members). */
export const KEPT = 4;

/**
 * The tallies one control plane keeps, on its context (context.ts `byteTallies`): one database,
 * so one set of tallies; a test or bench context of its own starts empty. Most recently read last.
 */
export class ByteTallies {
  readonly byCampaign = new Map<string, Tally>();
}
