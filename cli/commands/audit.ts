import { parseSince, stringFlag } from '../args.js';
import { printJson, type Command } from '../context.js';
import { CliError } from '../errors.js';
import { renderTable, truncate } from '../format.js';
import { auditQuery } from '../../protocol/operators.js';

/** A page a person can read; more is one `--before` away. */
export const AUDIT_PAGE = 100;
/** The most the route returns in one page (its contract). */
const AUDIT_MAX = auditQuery.shape.limit.unwrap().maxValue ?? 10_000;

function brief(v: unknown): string {
  if (v === null || v === undefined) return '';
  return truncate(typeof v === 'string' ? v : JSON.stringify(v), 80);
}

function positiveInt(text: string | undefined, flag: string, max: number): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > max) throw new CliError(`${flag} ${JSON.stringify(text)} is not a whole number from 1 to ${max}`, `for example ${flag} 50`, 2);
  return Number(text);
}

export const audit: Command = {
  usage: 'berth audit [--since 1h|2026-01-31T12:00:00Z] [--limit N] [--before ID] [--output json]',
  about: 'the audit log, newest first: who changed what, when (admins)',
  options: {
    since: { type: 'string', value: '1h|ISO-TIME', description: 'only entries at or after this time (a duration counts back from now)' },
    limit: { type: 'string', value: 'N', default: String(AUDIT_PAGE), description: `entries per page (at most ${AUDIT_MAX})` },
    before: { type: 'string', value: 'ID', description: 'only entries older than this id: the next page, as the last line says' },
  },
  examples: ['berth audit', 'berth audit --since 1h --limit 20', 'berth audit --before 1234'],
  async run({ io, args, client }) {
    const sinceText = stringFlag(args, 'since');
    const since = sinceText === undefined ? undefined : parseSince(sinceText, io.now());
    const limit = positiveInt(stringFlag(args, 'limit'), '--limit', AUDIT_MAX) ?? AUDIT_PAGE;
    const before = positiveInt(stringFlag(args, 'before'), '--before', Number.MAX_SAFE_INTEGER);
    const page = await (await client()).audit({ since, before: before === undefined ? undefined : String(before), limit });
    // The page goes to stdout in every format; where the rest is goes to stderr, so pipes stay clean.
    const more = () => {
      if (page.next !== null) io.err(`more entries exist: ${page.entries.length} shown, newest first; the next page: berth audit --before ${page.next}${sinceText ? ` --since ${sinceText}` : ''}${limit !== AUDIT_PAGE ? ` --limit ${limit}` : ''}`);
    };
    if (args.output === 'json') { printJson(io, page.entries); more(); return 0; }
    if (!page.entries.length) { io.out(since ? `no audit entries since ${since}` : 'no audit entries'); return 0; }
    io.out(renderTable([
      { header: 'id', get: (e) => e.id, align: 'right' },
      { header: 'at', get: (e) => e.at ?? '-' },
      { header: 'actor', get: (e) => e.actor },
      { header: 'action', get: (e) => e.action },
      { header: 'target', get: (e) => e.target },
      { header: 'after', get: (e) => brief(e.after) },
    ], page.entries));
    more();
    return 0;
  },
};
