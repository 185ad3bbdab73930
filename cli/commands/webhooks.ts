import { readFile, stat } from 'node:fs/promises';
import { requireFlag, requirePositionals } from '../args.js';
import { confirmDestructive, yesOption } from '../confirm.js';
import { printJson, type Command } from '../context.js';
import { CliError } from '../errors.js';
import { renderFields, renderTable } from '../format.js';
import { DELIVERIES_DEFAULT, webhookRoutes } from '../../protocol/webhooks.js';

/** `berth webhooks add|list|show|rm|test`: where the control plane POSTs its events (admin). */

/** The secret from a file only (never argv); a file others can read is refused, as for every secret. */
async function secretFrom(file: string): Promise<string> {
  let mode: number;
  try {
    mode = (await stat(file)).mode;
  } catch (err) {
    throw new CliError(`--secret-from-file ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`, undefined, 2);
  }
  if (mode & 0o077) throw new CliError(`--secret-from-file ${file}: readable by group or others (mode ${(mode & 0o777).toString(8)})`, `chmod 600 ${file}`, 2);
  const secret = (await readFile(file, 'utf8')).trim();
  if (secret.length < 16) throw new CliError(`--secret-from-file ${file}: the secret is shorter than 16 characters`, undefined, 2);
  return secret;
}

const add: Command = {
  usage: "berth webhooks add URL --events 'campaign.*,device.offline' [--secret-from-file F] [--description TEXT]",
  about: 'register a webhook (admin; audited); without --secret-from-file the control plane makes a secret and prints it once',
  help: `events: campaign.created|started|wave_started|paused|resumed|completed|failed|aborted,
device.enrolled|offline|online|failed|rolled_back, manifest.published; campaign.* and * match families.
Receivers check X-Berth-Signature: sha256=<hex> (HMAC of the body with the secret).`,
  options: {
    events: { type: 'string', value: 'LIST', description: 'comma-separated event types it receives (required)' },
    'secret-from-file': { type: 'string', value: 'F', complete: 'file', description: 'the HMAC secret (16+ characters, a 0600 file)' },
    description: { type: 'string', value: 'TEXT', description: 'a note for people' },
  },
  examples: ["berth webhooks add https://hooks.example.com/berth --events 'campaign.*,device.offline'", 'berth webhooks add https://hooks.example.com/berth --events "*" --secret-from-file hook.secret'],
  async run({ io, args, usage, client }) {
    const [url] = requirePositionals(args, ['URL'], usage);
    const events = requireFlag(args, 'events', usage).split(',').map((e) => e.trim()).filter(Boolean);
    const file = args.values['secret-from-file'];
    const secret = typeof file === 'string' ? await secretFrom(file) : undefined;
    const description = typeof args.values.description === 'string' ? args.values.description : undefined;
    const { body: w } = await (await client()).call('webhooks add', webhookRoutes.add, { body: { url, events, secret, description } });
    if (args.output === 'json') { printJson(io, w); return 0; }
    io.out(`webhook ${w.id} → ${w.url} for ${w.events.join(',')}`);
    if (w.secret) io.out(`secret (shown once; keep it for the receiver): ${w.secret}`);
    return 0;
  },
};

const list: Command = {
  usage: 'berth webhooks list [--output json]',
  about: 'webhooks with their delivery counts',
  options: {},
  examples: ['berth webhooks list'],
  async run({ io, args, client }) {
    const { body } = await (await client()).call('webhooks list', webhookRoutes.list);
    if (args.output === 'json') { printJson(io, body.webhooks); return 0; }
    if (!body.webhooks.length) { io.out('no webhooks (berth webhooks add URL --events …)'); return 0; }
    io.out(renderTable([
      { header: 'id', get: (w) => w.id },
      { header: 'url', get: (w) => w.url },
      { header: 'events', get: (w) => w.events.join(',') },
      { header: 'pending', get: (w) => String(w.pending), align: 'right' },
      { header: 'delivered', get: (w) => String(w.delivered), align: 'right' },
      { header: 'failed', get: (w) => String(w.failed), align: 'right' },
      { header: 'last error', get: (w) => w.lastError ?? '' },
    ], body.webhooks));
    return 0;
  },
};

const show: Command = {
  usage: 'berth webhooks show ID [--limit N] [--output json]',
  about: 'one webhook and its delivery history, newest first',
  options: { limit: { type: 'string', value: 'N', default: String(DELIVERIES_DEFAULT), description: 'deliveries shown, newest first' } },
  examples: ['berth webhooks show wh_1', 'berth webhooks show wh_1 --limit 200'],
  async run({ io, args, usage, client }) {
    const [id] = requirePositionals(args, ['ID'], usage);
    const limit = typeof args.values.limit === 'string' ? args.values.limit : undefined;
    const { body: w } = await (await client()).call('webhooks show', webhookRoutes.show, { params: { id }, query: { limit } });
    if (args.output === 'json') { printJson(io, w); return 0; }
    io.out(renderFields([['webhook', w.id], ['url', w.url], ['events', w.events.join(',')], ['created', `${w.createdAt} by ${w.createdBy}`], ['deliveries', `${w.pending} pending, ${w.delivered} delivered, ${w.failed} failed`]]));
    if (w.deliveries.length) {
      io.out('');
      io.out(renderTable([
        { header: 'event', get: (d) => d.eventId },
        { header: 'type', get: (d) => d.type },
        { header: 'subject', get: (d) => d.subject },
        { header: 'state', get: (d) => d.state },
        { header: 'tries', get: (d) => String(d.attempts), align: 'right' },
        { header: 'status', get: (d) => (d.lastStatus === null ? '' : String(d.lastStatus)) },
        { header: 'when', get: (d) => d.deliveredAt ?? d.nextAttemptAt ?? d.createdAt },
        { header: 'error', get: (d) => d.lastError ?? '' },
      ], w.deliveries));
    }
    return 0;
  },
};

const rm: Command = {
  usage: 'berth webhooks rm ID [--yes]',
  about: 'remove a webhook and its pending deliveries (admin; audited)',
  options: { ...yesOption },
  examples: ['berth webhooks rm wh_1', 'berth webhooks rm wh_1 --yes'],
  async run({ io, args, usage, client }) {
    const [id] = requirePositionals(args, ['ID'], usage);
    await confirmDestructive(io, args.values.yes === true, { action: `remove webhook ${id}`, consequence: `webhook ${id} and its pending deliveries are deleted` });
    const { body: w } = await (await client()).call('webhooks rm', webhookRoutes.remove, { params: { id } });
    if (args.output === 'json') { printJson(io, w); return 0; }
    io.out(`removed webhook ${w.id} (${w.url}; ${w.pending} pending deliveries dropped)`);
    return 0;
  },
};

const test: Command = {
  usage: 'berth webhooks test ID',
  about: 'queue a signed webhook.test event for the webhook, behind its pending deliveries (see webhooks show)',
  options: {},
  examples: ['berth webhooks test wh_1'],
  async run({ io, args, usage, client }) {
    const [id] = requirePositionals(args, ['ID'], usage);
    const { body } = await (await client()).call('webhooks test', webhookRoutes.test, { params: { id } });
    if (args.output === 'json') { printJson(io, body); return 0; }
    io.out(`queued ${body.eventId}; berth webhooks show ${id} tells whether it was delivered`);
    return 0;
  },
};

export const webhookCommands: Record<string, Command> = { add, list, show, rm, test };
