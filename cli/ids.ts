/**
 * Campaign ids people can type (issue 16): a campaign is `cmp_` and a UUID, too long to copy by
 * hand. Like git's object names, any unique prefix of at least MIN_PREFIX characters after `cmp_`
 * names it (the `cmp_` may be left out); an ambiguous prefix lists the campaigns it matches. Tables
 * show the shortest prefix that is unique among the ids shown, never fewer than SHORT characters.
 * Pure: the ids come from the caller.
 */
import { CliError } from './errors.js';

export const CAMPAIGN_PREFIX = 'cmp_';
/** Characters after `cmp_` a table shows at least (git's abbreviations start at 7). */
export const SHORT = 8;
/** Characters after `cmp_` a typed prefix needs, so `cmp_` alone is not taken for "every campaign". */
export const MIN_PREFIX = 4;
/** Matches an ambiguous prefix lists before summing up the rest. */
const LISTED = 10;

const FULL = /^cmp_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A full campaign id needs no list from the server to be resolved. */
export function isFullCampaignId(text: string): boolean {
  return FULL.test(text);
}

/** What the operator typed, as the start of an id: `4f1c` and `cmp_4f1c` are the same prefix. */
export function campaignPrefix(typed: string): string {
  const t = typed.trim().toLowerCase();
  return t.startsWith(CAMPAIGN_PREFIX) ? t : CAMPAIGN_PREFIX + t;
}

export interface CampaignRef {
  id: string;
  name?: string | null;
  status?: string;
  manifest?: string;
}

/**
 * The one campaign `typed` names among `known`: an exact id, else the only id it is a prefix of.
 * None: exit 1 (like the server's 404). Several: exit 2, listing them, so the operator types more.
 */
export function resolveCampaignId<T extends CampaignRef>(typed: string, known: readonly T[]): T {
  const exact = known.find((c) => c.id === typed);
  if (exact) return exact;
  const prefix = campaignPrefix(typed);
  if (prefix.length - CAMPAIGN_PREFIX.length < MIN_PREFIX) {
    throw new CliError(`campaign id ${JSON.stringify(typed)} is too short`, `give at least ${MIN_PREFIX} characters of the id after cmp_ (berth campaigns list shows them)`, 2);
  }
  const matches = known.filter((c) => c.id.startsWith(prefix));
  if (matches.length === 1) return matches[0];
  if (matches.length === 0) throw new CliError(`no campaign id starts with ${prefix}`, 'berth campaigns list shows the campaigns and their ids');
  const shown = matches.slice(0, LISTED).map((c) => `  ${c.id}${describe(c)}`);
  if (matches.length > LISTED) shown.push(`  … and ${matches.length - LISTED} more`);
  throw new CliError(`campaign id prefix ${prefix} is ambiguous: ${matches.length} campaigns match\n${shown.join('\n')}`, 'type more of the id', 2);
}

function describe(c: CampaignRef): string {
  const parts = [c.name, c.manifest, c.status].filter((p): p is string => typeof p === 'string' && p !== '');
  return parts.length ? `  ${parts.join('  ')}` : '';
}

/**
 * The shortest prefix of each id that no other id in `ids` shares, at least SHORT characters after
 * `cmp_` (never cut inside the `cmp_`). Ids of another form are kept whole.
 */
export function shortIds(ids: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  const sorted = [...new Set(ids)].sort();
  for (let i = 0; i < sorted.length; i++) {
    const id = sorted[i];
    if (!id.startsWith(CAMPAIGN_PREFIX)) {
      out.set(id, id);
      continue;
    }
    // In sorted order the ids sharing the longest prefix with this one are its neighbours.
    const shared = Math.max(common(id, sorted[i - 1]), common(id, sorted[i + 1]));
    const length = Math.max(CAMPAIGN_PREFIX.length + SHORT, shared + 1);
    out.set(id, id.slice(0, Math.min(length, id.length)));
  }
  return out;
}

function common(a: string, b: string | undefined): number {
  if (b === undefined) return 0;
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

/** The full id `typed` names; lists the campaigns (`list`) only when it is not a full id already. */
export async function campaignIdOf(typed: string, list: () => Promise<readonly CampaignRef[]>): Promise<string> {
  if (isFullCampaignId(typed)) return typed;
  return resolveCampaignId(typed, await list()).id;
}
