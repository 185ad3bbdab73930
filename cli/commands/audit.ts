import { parseSince, stringFlag } from '../args.js';
import { printJson, type Command } from '../context.js';
import { renderTable, truncate } from '../format.js';

function brief(v: unknown): string {
  if (v === null || v === undefined) return '';
  return truncate(typeof v === 'string' ? v : JSON.stringify(v), 80);
}

export const audit: Command = {
  usage: 'berth audit [--since 1h|2026-01-31T12:00:00Z] [--output json]',
  about: 'the audit log: who changed what, when (admins)',
  options: { since: { type: 'string' } },
  async run({ io, args, client }) {
    const sinceText = stringFlag(args, 'since');
    const since = sinceText === undefined ? undefined : parseSince(sinceText, io.now());
    const entries = await (await client()).audit(since);
    if (args.output === 'json') { printJson(io, entries); return 0; }
    if (!entries.length) { io.out(since ? `no audit entries since ${since}` : 'no audit entries'); return 0; }
    io.out(renderTable([
      { header: 'at', get: (e) => e.at ?? '-' },
      { header: 'actor', get: (e) => e.actor },
      { header: 'action', get: (e) => e.action },
      { header: 'target', get: (e) => e.target },
      { header: 'after', get: (e) => brief(e.after) },
    ], entries));
    return 0;
  },
};
