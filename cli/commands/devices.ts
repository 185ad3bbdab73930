import { confirmDestructive, yesOption } from '../confirm.js';
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parseLabelEdits, requirePositionals, stringFlag } from '../args.js';
import { DEVICE_PAGE, type DeviceSummary, type Twin } from '../client.js';
import { printJson, type Command } from '../context.js';
import type { z } from 'zod';
import { importRefusal } from '../../protocol/devices.js';
import { CliError } from '../errors.js';
import { ApiError } from '../http.js';
import { formatAgo, formatBytes, formatLabels, formatUpdateBytes, renderFields, renderTable, shortDigest, truncate } from '../format.js';

/** CSV with the header `serial,public_key,labels`, or JSON lines; decided by extension, else content. */
export function recordsContentType(file: string, text: string): string {
  const ext = extname(file).toLowerCase();
  if (ext === '.csv') return 'text/csv';
  if (ext === '.jsonl' || ext === '.ndjson' || ext === '.json') return 'application/x-ndjson';
  return text.trimStart().startsWith('{') ? 'application/x-ndjson' : 'text/csv';
}

export const devicesImport: Command = {
  usage: 'berth devices import FILE   (CSV serial,public_key,labels or JSON lines; - for stdin)',
  about: "import the manufacturer's device records (serial + public key); idempotent",
  options: {},
  args: ['file'],
  examples: ['berth devices import records.csv', 'berth devices import records.jsonl -o json', 'cat records.csv | berth devices import -'],
  async run({ io, args, usage, client }) {
    const [file] = requirePositionals(args, ['FILE'], usage);
    let text: string;
    try {
      text = file === '-' ? await io.readStdin() : await readFile(file, 'utf8');
    } catch (err) {
      throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'give the path of the manufacturing records file');
    }
    let result;
    try {
      result = await (await client()).importDevices(text, recordsContentType(file, text));
    } catch (err) {
      const refusal = importRefusalOf(err);
      if (!refusal) throw err;
      // Every bad line the server reported, one per line; the server keeps the first 100 and counts all.
      if (args.output === 'json') printJson(io, refusal);
      io.err(`berth: importing ${file} failed: ${refusal.errorCount} bad line(s); nothing was imported [422 ${refusal.error.code}]`);
      for (const e of refusal.errors) io.err(`  line ${e.line}: ${e.message}`);
      if (refusal.errorCount > refusal.errors.length) io.err(`  … and ${refusal.errorCount - refusal.errors.length} more bad line(s) (the server reports the first ${refusal.errors.length})`);
      return 1;
    }
    if (args.output === 'json') { printJson(io, result); return 0; }
    io.out(`imported ${result.total} record(s): ${result.created} new, ${result.updated} updated, ${result.unchanged} unchanged`);
    return 0;
  },
};

/** The 422 of an import, as the contract describes it; anything else is not a list of bad lines. */
function importRefusalOf(err: unknown): z.infer<typeof importRefusal> | null {
  if (!(err instanceof ApiError) || err.server.status !== 422) return null;
  const parsed = importRefusal.safeParse(err.server.body);
  return parsed.success ? parsed.data : null;
}

export function deviceRows(devices: DeviceSummary[], now: Date, wide = false): string {
  return renderTable([
    ...(wide ? [{ header: 'id', get: (d: DeviceSummary) => d.id }] : []),
    { header: 'serial', get: (d) => d.serial },
    { header: 'status', get: (d) => d.status },
    { header: 'online', get: (d) => (d.online === null ? '-' : d.online ? 'yes' : 'no') },
    { header: 'desired', get: (d) => d.desired ?? '-' },
    ...(wide ? [{ header: 'sequence', get: (d: DeviceSummary) => (d.desiredSequence === null ? '-' : String(d.desiredSequence)), align: 'right' as const }] : []),
    { header: 'phase', get: (d) => d.phase ?? '-' },
    { header: 'last seen', get: (d) => formatAgo(d.lastSeenAt, now) },
    ...(wide ? [{ header: 'seen at', get: (d: DeviceSummary) => d.lastSeenAt ?? '-' }] : []),
    { header: 'labels', get: (d) => formatLabels(d.labels) },
  ], devices);
}

export const devicesList: Command = {
  usage: 'berth devices list [-l SELECTOR] [--limit N] [--after SERIAL] [--output json]',
  about: 'devices in serial order, optionally those a label selector picks (site=berlin,tier!=canary); all of them unless --limit',
  options: {
    selector: { type: 'string', short: 'l', value: 'SEL', description: 'only the devices the label selector picks (site=berlin,tier!=canary,model in (a,b),!beta)' },
    limit: { type: 'string', value: 'N', default: `all, fetched ${DEVICE_PAGE} a request`, description: 'at most N devices' },
    after: { type: 'string', value: 'SERIAL', complete: 'serial', description: 'start after this serial: the next page, as the last line says' },
  },
  examples: ['berth devices list -l site=berlin', 'berth devices list --limit 50', 'berth devices list --limit 50 --after gw-0049', 'berth devices list -o wide'],
  async run({ io, args, client }) {
    const selector = stringFlag(args, 'selector');
    const limitText = stringFlag(args, 'limit');
    if (limitText !== undefined && !/^[1-9]\d*$/.test(limitText)) throw new CliError(`--limit ${JSON.stringify(limitText)} is not a whole number above 0`, 'for example --limit 50', 2);
    const after = stringFlag(args, 'after');
    const { devices, total, next } = await (await client()).listDevices(selector, limitText === undefined ? Infinity : Number(limitText), after);
    // A cut list says so on stderr (stdout stays the rows, for pipes) with the command for the rest.
    const cut = () => {
      if (next !== null) io.err(`${devices.length} of ${total} device(s) shown${after ? ` after ${after}` : ''}; the next page: berth devices list${selector ? ` -l '${selector}'` : ''}${limitText ? ` --limit ${limitText}` : ''} --after ${next}`);
    };
    if (args.output === 'json') { printJson(io, devices); cut(); return 0; }
    if (!devices.length) { io.out(selector ? `no device matches ${selector}` : after ? `no device after ${after}` : 'no devices yet (berth devices import FILE)'); return 0; }
    io.out(deviceRows(devices, io.now(), args.wide));
    cut();
    return 0;
  },
};

export function renderTwin(t: Twin, now: Date): string {
  const d = t.device;
  const r = t.reported;
  const out: string[] = [];
  out.push(renderFields([
    ['serial', d.serial],
    ['status', `${d.status}${d.online === null ? '' : d.online ? ', online' : ', offline'}`],
    ['labels', formatLabels(d.labels)],
    ['last seen', `${formatAgo(d.lastSeenAt, now)}${d.lastSeenAt ? ` (${d.lastSeenAt})` : ''}`],
    ['desired', t.desired ? `${t.desired.release}${t.desired.sequence !== null ? ` (sequence ${t.desired.sequence})` : ''}${t.desired.campaign ? `, campaign ${t.desired.campaign}` : ''}` : '- (nothing assigned)'],
    ['reported', r ? `${r.running ?? 'nothing running'}, phase ${r.phase}${r.desiredSequence !== null ? ` of sequence ${r.desiredSequence}` : ''}${r.bytes.total ? `, ${formatUpdateBytes(r.bytes)}` : ''}` : '- (no report yet)'],
    ['previous', t.previousRelease ?? '-'],
    ['in sync', t.desired === null ? '- (nothing desired)' : t.inSync ? 'yes' : 'no'],
  ]));
  if (r?.error) out.push(`error:     ${truncate(r.error.trimEnd(), 2000).split('\n').join('\n           ')}`);
  const names = Object.keys(t.services).sort();
  if (names.length) {
    out.push('');
    out.push(renderTable([
      { header: 'service', get: (n) => n },
      { header: 'desired image', get: (n) => shortImage(t.services[n].desiredImage) },
      { header: 'reported image', get: (n) => shortImage(t.services[n].reportedImage) },
      { header: 'status', get: (n) => t.services[n].status ?? '-' },
      { header: 'health', get: (n) => t.services[n].health ?? '-' },
      { header: 'restarts', get: (n) => String(t.services[n].restarts ?? '-'), align: 'right' },
      { header: 'drift', get: (n) => t.services[n].drift },
      { header: 'last error', get: (n) => truncate(t.services[n].lastError ?? '', 60) || '-' },
    ], names));
  }
  if (t.drift.length) {
    out.push('', 'drift:');
    for (const x of t.drift) out.push(`  ${x}`);
  }
  return out.join('\n');
}

function shortImage(ref: string | null): string {
  if (!ref) return '-';
  const at = ref.indexOf('@');
  return at < 0 ? ref : `${ref.slice(0, at)}@${shortDigest(ref.slice(at + 1))}`;
}

export const devicesShow: Command = {
  usage: 'berth devices show SERIAL [--output json]',
  about: "a device's twin: desired vs reported state, and where they differ",
  options: {},
  args: ['serial'],
  examples: ['berth devices show gw-0042', 'berth devices show gw-0042 -o json'],
  async run({ io, args, usage, client }) {
    const [serial] = requirePositionals(args, ['SERIAL'], usage);
    const twin = await (await client()).twin(serial);
    if (args.output === 'json') { printJson(io, twin); return 0; }
    io.out(renderTwin(twin, io.now()));
    return 0;
  },
};

export const devicesLabel: Command = {
  usage: 'berth devices label SERIAL k=v … (k- removes k)',
  about: "set or remove a device's labels",
  options: {},
  args: ['serial', 'none'],
  examples: ['berth devices label gw-0042 site=berlin tier=canary', 'berth devices label gw-0042 tier-'],
  async run({ io, args, usage, client }) {
    const [serial, ...labels] = requirePositionals(args, ['SERIAL', 'k=v'], usage, true);
    const edit = parseLabelEdits(labels);
    const device = await (await client()).labelDevice(serial, edit);
    if (args.output === 'json') { printJson(io, device); return 0; }
    io.out(`${serial}: labels ${formatLabels(device.labels)}`);
    return 0;
  },
};

export const devicesRevoke: Command = {
  usage: 'berth devices revoke SERIAL [--yes]',
  about: 'revoke a device: its credentials stop working at once',
  options: { ...yesOption },
  args: ['serial'],
  examples: ['berth devices revoke gw-0042', 'berth devices revoke gw-0042 --yes   # in a script: no question'],
  async run({ io, args, usage, client }) {
    const [serial] = requirePositionals(args, ['SERIAL'], usage);
    await confirmDestructive(io, args.values.yes === true, { action: `revoke device ${serial}`, consequence: `device ${serial}'s credentials stop working at once, and it can no longer enroll` });
    const device = await (await client()).revokeDevice(serial);
    if (args.output === 'json') { printJson(io, device); return 0; }
    io.out(`${serial}: revoked`);
    return 0;
  },
};
