/**
 * `berth devices assign|rollback|history|rm` (issue 16): one device at a time, outside campaigns,
 * each a route the control plane already had (rm: `DELETE /v1/devices/:serial`, after revocation).
 * The server audits every change; `rm` asks first (cli/confirm.ts).
 */
import { formatReleaseRef, parseReleaseRef } from '../../common/grammar.js';
import { requirePositionals, stringFlag } from '../args.js';
import { confirmDestructive, yesOption } from '../confirm.js';
import { printJson, type Command } from '../context.js';
import { CliError } from '../errors.js';
import { contractDefault } from '../framework.js';
import { historyQuery } from '../../protocol/devices.js';
import { formatAgo, formatUpdateBytes, renderTable, truncate } from '../format.js';

export const devicesAssign: Command = {
  usage: 'berth devices assign SERIAL NAME@VERSION',
  about: 'assign a published manifest version to one device directly, outside any campaign (audited)',
  options: {},
  args: ['serial', 'release'],
  help: 'Checked as a campaign is: the privileges its policies must grant and the variables it needs; a refusal names what is missing.',
  examples: ['berth devices assign gw-0042 weather-station@1.4.0'],
  async run({ io, args, usage, client }) {
    const [serial, ref] = requirePositionals(args, ['SERIAL', 'NAME@VERSION'], usage);
    // Checked here with the server's grammar: `demo@1` is a usage error, not a 404.
    const release = formatReleaseRef(parseReleaseRef(ref, 'NAME@VERSION'));
    const r = await (await client()).assignDevice(serial, release);
    if (args.output === 'json') { printJson(io, r); return 0; }
    io.out(`${serial}: assigned ${r.release ?? release}${r.sequence === null ? '' : ` (document ${r.sequence})`}`);
    return 0;
  },
};

export const devicesRollback: Command = {
  usage: 'berth devices rollback SERIAL',
  about: 'send one device back to the manifest version it ran before (audited)',
  options: {},
  args: ['serial'],
  examples: ['berth devices rollback gw-0042'],
  async run({ io, args, usage, client }) {
    const [serial] = requirePositionals(args, ['SERIAL'], usage);
    const r = await (await client()).rollbackDevice(serial);
    if (args.output === 'json') { printJson(io, r); return 0; }
    io.out(`${serial}: rolled back to ${r.release ?? '(nothing)'}${r.sequence === null ? '' : ` (document ${r.sequence})`}`);
    return 0;
  },
};

export const devicesHistory: Command = {
  usage: 'berth devices history SERIAL [--limit N]',
  about: "a device's latest reports, oldest first: when, what it ran, its phase and error",
  options: { limit: { type: 'string', value: 'N', default: String(contractDefault(historyQuery.shape.limit)), description: 'the newest N reports the server keeps (1 to 1000)' } },
  args: ['serial'],
  examples: ['berth devices history gw-0042', 'berth devices history gw-0042 --limit 5 -o wide'],
  async run({ io, args, usage, client }) {
    const [serial] = requirePositionals(args, ['SERIAL'], usage);
    const limitText = stringFlag(args, 'limit');
    const limit = limitText === undefined ? undefined : Number(limitText);
    if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= 1000)) throw new CliError(`--limit ${JSON.stringify(limitText)} is not a whole number from 1 to 1000`, `usage: ${usage}`, 2);
    const reports = await (await client()).deviceHistory(serial, limit);
    if (args.output === 'json') { printJson(io, reports); return 0; }
    if (!reports.length) { io.out(`${serial} has not reported yet`); return 0; }
    const now = io.now();
    io.out(renderTable([
      { header: 'received', get: (r) => (args.wide ? r.receivedAt : formatAgo(r.receivedAt, now)) },
      { header: 'report', get: (r) => String(r.sequence), align: 'right' },
      { header: 'document', get: (r) => (r.desiredSequence === null ? '-' : String(r.desiredSequence)), align: 'right' },
      { header: 'running', get: (r) => r.running ?? '-' },
      { header: 'phase', get: (r) => r.phase },
      ...(args.wide ? [{ header: 'bytes', get: (r: (typeof reports)[number]) => formatUpdateBytes(r.bytes) }, { header: 'services', get: (r: (typeof reports)[number]) => Object.keys(r.services).join(',') || '-' }] : []),
      { header: 'error', get: (r) => (args.wide ? r.error ?? '-' : truncate(r.error ?? '', 60) || '-') },
    ], reports));
    return 0;
  },
};

export const devicesRemove: Command = {
  usage: 'berth devices rm SERIAL [--yes]',
  about: 'remove a revoked device and everything kept for it (state, history, its own variables and secrets)',
  options: { ...yesOption },
  args: ['serial'],
  help: 'Refused while the device is not revoked, or while an active campaign holds it; nothing is removed then. Its id stays revoked for the registry proxy until its last pull token expired.',
  examples: ['berth devices revoke gw-0042 --yes && berth devices rm gw-0042 --yes'],
  async run({ io, args, usage, client }) {
    const [serial] = requirePositionals(args, ['SERIAL'], usage);
    await confirmDestructive(io, args.values.yes === true, { action: `remove device ${serial}`, consequence: `device ${serial}, its report history, and the variables and secrets set for it alone are deleted for good (it must be revoked first)` });
    const r = await (await client()).removeDevice(serial);
    if (args.output === 'json') { printJson(io, r); return 0; }
    io.out(`${serial}: removed`);
    return 0;
  },
};
