import { formatDuration, formatShare, formatWave, parseDuration, parsePercent, parseReleaseRef, parseWaves } from '../../common/grammar.js';
import { dryRun } from './policies.js';
import { campaignFields, createCampaignBody } from '../../protocol/campaign-spec.js';
import { campaignIdOf, shortIds } from '../ids.js';
import { confirmDestructive, yesOption } from '../confirm.js';
import { checkFlag, requireFlag, requirePositionals, stringFlag, type OptionSpec, type ParsedCommand } from '../args.js';
import { contractDefault } from '../framework.js';
import type { Campaign, CampaignCreate } from '../client.js';
import { printJson, type Command, type Context } from '../context.js';
import { ApiError } from '../http.js';
import { CliError, usageError } from '../errors.js';
import { colorEnabled, formatAgo, formatBytes, renderFields, renderTable } from '../format.js';
import { outcomeOf, renderProgress, renderProgressLine, WATCH_EXIT } from '../progress.js';
import { printVariablesCheck } from './vars.js';
import { CR, ESC } from '../terminal-safe.js';

const CREATE_USAGE =
  'berth campaigns create --manifest NAME@VERSION --selector SEL --waves 1,10%,100% [--success PCT] [--max-failures PCT] [--device-timeout DUR] [--soak DUR] [--window CRON --window-duration DUR [--tz TZ]] [--on-failure pause|rollback] [--supersede] [--reconfigure] [--start] [--name NAME] [--dry-run]';

/** The defaults shown are the server's own, read from the request schema (protocol/campaign-spec.ts), not examples. */
const field = createCampaignBody.shape;
const D = {
  success: formatShare(contractDefault(field.success) as number),
  maxFailures: formatShare(contractDefault(field.maxFailures) as number),
  deviceTimeout: formatDuration(contractDefault(field.deviceTimeout) as number),
  soak: formatDuration(contractDefault(field.soak) as number),
  tz: contractDefault(field.window.unwrap().shape.tz) as string,
  onFailure: contractDefault(field.onFailure) as string,
};

const CREATE_OPTIONS: Record<string, OptionSpec> = {
  manifest: { type: 'string', value: 'NAME@VERSION', complete: 'release', description: 'the published manifest to roll out (required)' },
  selector: { type: 'string', short: 'l', value: 'SEL', description: 'the devices it targets, a label selector; "" picks every device (required)' },
  waves: { type: 'string', value: 'LIST', description: 'cumulative targets, device counts or percentages: 1,10%,100% or 5,12.5%,100% (required)' },
  success: { type: 'string', value: 'PCT', default: D.success, description: 'share of a wave that must run the release healthy' },
  'max-failures': { type: 'string', value: 'PCT', default: D.maxFailures, description: 'share of a wave that may fail before --on-failure acts' },
  'device-timeout': { type: 'string', value: 'DUR', default: D.deviceTimeout, description: 'a device without a success report after this has failed' },
  soak: { type: 'string', value: 'DUR', default: D.soak, description: 'wait after a wave passes before the next one starts' },
  window: { type: 'string', value: 'CRON', description: 'assign devices only while a window is open; each lasts --window-duration' },
  'window-duration': { type: 'string', value: 'DUR', description: 'how long each --window stays open' },
  tz: { type: 'string', value: 'TZ', default: D.tz, description: 'time zone of --window' },
  'on-failure': { type: 'string', value: 'ACTION', choices: ['pause', 'rollback'], default: D.onFailure, description: 'pause, or rollback (abort and send every device back)' },
  supersede: { type: 'boolean', description: 'take over devices that other active campaigns hold' },
  reconfigure: { type: 'boolean', description: 're-resolve variables: only devices already on this manifest whose values changed join' },
  start: { type: 'boolean', description: 'start the campaign at once' },
  name: { type: 'string', value: 'NAME', description: 'a name for people' },
  'dry-run': { type: 'boolean', description: 'run the privilege and variables checks for the selected devices and create nothing' },
  'allow-empty': { type: 'boolean', description: 'create it even when the selector picks no enrolled device' },
};

/** Flags → the create request; pure, so every rule is unit-tested. Each value is checked as the server checks it. */
export function campaignRequest(args: ParsedCommand): CampaignCreate {
  const manifest = parseReleaseRef(requireFlag(args, 'manifest', CREATE_USAGE), '--manifest');
  const selector = stringFlag(args, 'selector');
  if (selector === undefined) throw usageError('--selector is required (use --selector "" to pick every device)', CREATE_USAGE);
  const waves = parseWaves(requireFlag(args, 'waves', CREATE_USAGE), '--waves');
  const body: CampaignCreate = { manifest: `${manifest.name}@${manifest.version}`, selector, waves: waves.map(formatWave) };
  const name = stringFlag(args, 'name');
  if (name) body.name = name;
  const success = stringFlag(args, 'success');
  if (success !== undefined) body.success = checkFlag(campaignFields.success, parsePercent(success, '--success') / 100, '--success');
  const maxFailures = stringFlag(args, 'max-failures');
  if (maxFailures !== undefined) body.maxFailures = checkFlag(campaignFields.maxFailures, parsePercent(maxFailures, '--max-failures') / 100, '--max-failures');
  const timeout = stringFlag(args, 'device-timeout');
  if (timeout !== undefined) body.deviceTimeout = formatDuration(checkFlag(campaignFields.deviceTimeout, timeout, '--device-timeout'));
  const soak = stringFlag(args, 'soak');
  if (soak !== undefined) body.soak = formatDuration(checkFlag(campaignFields.soak, soak, '--soak'));
  const cron = stringFlag(args, 'window');
  const windowDuration = stringFlag(args, 'window-duration');
  const tz = stringFlag(args, 'tz');
  if (cron !== undefined) {
    if (windowDuration === undefined) throw usageError('--window needs --window-duration (how long each window stays open)', CREATE_USAGE);
    body.window = { cron, duration: formatDuration(checkFlag(campaignFields.windowDuration, windowDuration, '--window-duration')), tz: tz ?? D.tz };
  } else if (windowDuration !== undefined || tz !== undefined) {
    throw usageError('--window-duration and --tz only make sense with --window CRON', CREATE_USAGE);
  }
  const onFailure = stringFlag(args, 'on-failure');
  if (onFailure !== undefined) {
    if (onFailure !== 'pause' && onFailure !== 'rollback') throw usageError(`--on-failure ${JSON.stringify(onFailure)}: expected pause or rollback`, CREATE_USAGE);
    body.onFailure = onFailure;
  }
  if (args.values.supersede === true) body.supersede = true;
  if (args.values.reconfigure === true) body.reconfigure = true;
  if (args.values.start === true) body.start = true;
  return body;
}

function share(x: number | null): string {
  return x === null ? '-' : formatShare(x);
}

/** "3.1 MiB of 94 MiB moved by 2 devices, 2 through layer deltas": what the rollout cost the links. */
function renderBytes(b: NonNullable<Campaign['bytes']>): string {
  return `${formatBytes(b.moved)} of ${formatBytes(b.full)} moved by ${b.devices} device${b.devices === 1 ? '' : 's'}, ${b.viaDelta} through layer deltas`;
}

export function renderCampaign(c: Campaign, now: Date, fancy: boolean): string {
  const fields: [string, string][] = [
    ['selector', c.selector || '(every device)'],
    ['devices', Object.entries(c.devices).filter(([, n]) => n > 0).map(([s, n]) => `${s} ${n}`).join(' · ') || '0'],
    ...(c.bytes && c.bytes.devices > 0 ? [['bytes', renderBytes(c.bytes)] as [string, string]] : []),
    ['created', `${formatAgo(c.createdAt, now)}${c.createdBy ? ` by ${c.createdBy}` : ''}${c.startedAt ? `, started ${formatAgo(c.startedAt, now)}` : ''}${c.finishedAt ? `, finished ${formatAgo(c.finishedAt, now)}` : ''}`],
  ];
  if (c.rules) {
    fields.push(['waves', c.rules.waves.join(',')]);
    fields.push(['rules', `success ≥ ${share(c.rules.success)}, failures ≤ ${share(c.rules.maxFailures)} then ${c.rules.onFailure ?? '-'}, device timeout ${c.rules.deviceTimeout ?? '-'}, soak ${c.rules.soak ?? '-'}`]);
  }
  if (c.soakUntil) fields.push(['soaking', `until ${c.soakUntil} (${formatAgo(c.soakUntil, now)})`]);
  if (c.window) fields.push(['window', `${c.window.cron} for ${c.window.duration} (${c.window.tz}): ${c.window.open ? `open, closes ${formatAgo(c.window.closesAt, now)}` : `closed, opens ${formatAgo(c.window.opensAt, now)}`}`]);
  return `${renderProgress(c, { fancy })}\n${renderFields(fields)}`;
}

/** Names the campaigns that hold the devices, and says how to take them over. */
export function conflictError(err: ApiError): CliError {
  const body = err.server.body as { total?: unknown; conflicts?: unknown } | undefined;
  const conflicts = Array.isArray(body?.conflicts) ? (body.conflicts as { serial?: unknown; campaignId?: unknown; campaignName?: unknown }[]) : [];
  const byCampaign = new Map<string, string[]>();
  for (const c of conflicts) {
    const key = `${String(c.campaignId)}${c.campaignName ? ` (${String(c.campaignName)})` : ''}`;
    byCampaign.set(key, [...(byCampaign.get(key) ?? []), String(c.serial)]);
  }
  const held = [...byCampaign].map(([campaign, serials]) => `${campaign}: ${serials.slice(0, 5).join(', ')}${serials.length > 5 ? ` and ${serials.length - 5} more` : ''}`);
  const total = typeof body?.total === 'number' ? body.total : conflicts.length;
  return new CliError(
    `creating the campaign failed: ${total} matching device(s) belong to other active campaigns${held.length ? ` (${held.join('; ')})` : ''}`,
    'add --supersede to move them to this campaign, or narrow --selector, or abort the other campaign',
  );
}

const listCmd: Command = {
  usage: 'berth campaigns list [--output json|wide]',
  about: 'campaigns, newest first, with their status and current wave',
  options: {},
  examples: ['berth campaigns list', 'berth campaigns list -o name'],
  async run({ io, args, client }) {
    const items = await (await client()).listCampaigns();
    if (args.output === 'json') { printJson(io, items); return 0; }
    if (!items.length) { io.out('no campaigns yet (berth campaigns create …)'); return 0; }
    const now = io.now();
    // Short ids people can type back (any unique prefix names a campaign); -o wide and json keep them whole.
    const short = shortIds(items.map((c) => c.id));
    io.out(renderTable([
      { header: 'id', get: (c) => (args.wide ? c.id : short.get(c.id) ?? c.id) },
      { header: 'name', get: (c) => c.name ?? '-' },
      { header: 'manifest', get: (c) => c.manifest },
      { header: 'status', get: (c) => c.status },
      { header: 'wave', get: (c) => (c.currentWave === null ? '-' : String(c.currentWave)), align: 'right' },
      { header: 'selector', get: (c) => c.selector || '(all)' },
      { header: 'created', get: (c) => formatAgo(c.createdAt, now) },
    ], items));
    return 0;
  },
};

const createCmd: Command = {
  usage: CREATE_USAGE,
  help: 'durations: 90s, 10m, 1h30m, 2d; percentages: 95%, 12.5% (cli/README.md, "Values"). Left out, a rule takes the default above: the server\'s own.',
  about: 'create a rollout of a manifest version in waves (add --start to start it at once)',
  options: CREATE_OPTIONS,
  examples: [
    'berth campaigns create --manifest demo@2.0.0 --selector site=berlin --waves 1,10%,100% --start',
    "berth campaigns create --manifest demo@2.0.0 -l 'tier!=canary' --waves 5,50%,100% --success 95% --soak 10m",
    "berth campaigns create --manifest demo@2.0.0 --selector '' --waves 100% --window '0 2 * * *' --window-duration 2h --tz Europe/Berlin",
    'berth campaigns create --manifest demo@2.0.0 --selector site=berlin --waves 100% --dry-run',
  ],
  async run({ io, args, client }) {
    const body = campaignRequest(args);
    // A campaign of no device "completes" at once: almost always a selector typo or devices not enrolled yet.
    if (args.values['allow-empty'] !== true && args.values['dry-run'] !== true) {
      const found = await enrolledMatches(await client(), body.selector ?? '');
      if (found.enrolled === 0) {
        throw new CliError(
          `the selector ${JSON.stringify(body.selector ?? '')} picks no enrolled device (${found.total} matched but are not enrolled); nothing was created`,
          'check the selector with `berth devices list -l SELECTOR`, or pass --allow-empty to create the campaign anyway',
        );
      }
    }
    // The privilege check of issue 12, without creating anything.
    if (args.values['dry-run'] === true) {
      const c = await client();
      const [privileges, variables] = [await c.checkRollout(body.manifest, body.selector ?? ''), await c.checkVariables(body.manifest, body.selector ?? '')];
      if (args.output === 'json') { printJson(io, { ...privileges, ok: privileges.ok && variables.ok, variables }); return privileges.ok && variables.ok ? 0 : 1; }
      const code = await dryRun(io, args.output, privileges);
      return Math.max(code, printVariablesCheck(io, variables));
    }
    let c: Campaign;
    try {
      c = await (await client()).createCampaign(body);
    } catch (err) {
      if (err instanceof ApiError && err.server.code === 'campaign-conflict') throw conflictError(err);
      throw err;
    }
    if (args.output === 'json') { printJson(io, c); return 0; }
    const total = Object.values(c.devices).reduce((a, n) => a + n, 0);
    io.out(`campaign ${c.id} ${c.status}: ${c.manifest} to ${total} device(s) in ${c.waves.length} wave(s)`);
    io.out(`  watch it: berth campaigns status ${c.id} --watch`);
    return 0;
  },
};

/** Walks the selector's devices until one is enrolled (usually the first page); the count otherwise. */
async function enrolledMatches(c: Awaited<ReturnType<Context['client']>>, selector: string): Promise<{ enrolled: number; total: number }> {
  let after: string | undefined;
  for (;;) {
    const page = await c.listDevicesPage({ selector: selector || undefined, limit: 1000, after });
    const enrolled = page.devices.filter((d) => d.status === 'enrolled').length;
    if (enrolled > 0 || page.next === null) return { enrolled, total: page.total };
    after = page.next;
  }
}

function actionCmd(action: 'start' | 'pause' | 'resume' | 'abort', about: string): Command {
  const destructive = action === 'abort';
  return {
    usage: `berth campaigns ${action} ID${destructive ? ' [--yes]' : ''}   (ID: the id or a unique prefix of it)`,
    about,
    options: destructive ? { ...yesOption } : {},
    args: ['campaign'],
    examples: [`berth campaigns ${action} 4f2a1c9e`, ...(destructive ? [`berth campaigns ${action} 4f2a1c9e --yes`] : [])],
    async run({ io, args, usage, client }) {
      const [typed] = requirePositionals(args, ['ID'], usage);
      const cl = await client();
      const id = await campaignIdOf(typed, () => cl.listCampaigns());
      if (destructive) await confirmDestructive(io, args.values.yes === true, { action: `abort campaign ${id}`, consequence: `campaign ${id} stops for good and sends its devices back to the manifest each ran before` });
      const c = await cl.campaignAction(id, action);
      if (args.output === 'json') { printJson(io, c); return 0; }
      io.out(`campaign ${c.id || id}: ${c.status}${c.statusReason ? ` (${c.statusReason})` : ''}`);
      return 0;
    },
  };
}

/** Redraw in place on a terminal; on a pipe, one line per change. Exit code from the outcome. */
async function watch(ctx: Context, id: string, intervalMs: number): Promise<number> {
  const { io } = ctx;
  const client = await ctx.client();
  const fancy = colorEnabled(io.isTTY, io.env);
  let drawnLines = 0;
  // What was drawn last: a block on a terminal, a line on a pipe; unchanged progress is not redrawn.
  let lastLine = '';
  let networkFailures = 0;
  for (;;) {
    let c: Campaign;
    try {
      c = await client.campaign(id, 10_000);
      networkFailures = 0;
    } catch (err) {
      // A blip (control plane restarting, link down) is waited out; a refusal (404, 401) is final.
      if (err instanceof ApiError && err.server.status < 500) throw err;
      if (++networkFailures > 30) throw err;
      io.err(`(${err instanceof Error ? err.message : String(err)}; retrying)`);
      await io.sleep(intervalMs);
      continue;
    }
    if (io.isTTY) {
      const block = renderProgress(c, { fancy });
      if (block !== lastLine) {
        // Cursor up over the previous block, then clear to the end of the screen.
        io.out((drawnLines ? `${ESC}[${drawnLines}A${CR}${ESC}[J` : '') + block);
        drawnLines = block.split('\n').length;
      }
      lastLine = block;
    } else {
      const line = renderProgressLine(c);
      if (line !== lastLine) io.out(`${io.now().toISOString().slice(11, 19)} ${line}`);
      lastLine = line;
    }
    const outcome = outcomeOf(c.status);
    if (outcome !== 'running') {
      if (!io.isTTY && c.failing.length) for (const f of c.failing) io.out(`  failing ${f.serial}${f.wave !== null ? ` (wave ${f.wave})` : ''}${f.error ? `: ${f.error.trimEnd().split('\n').join('\n      ')}` : ''}`);
      if (outcome === 'failed') io.err(`campaign ${id} ended ${c.status}${c.statusReason ? `: ${c.statusReason}` : ''}`);
      if (outcome === 'paused') io.err(`campaign ${id} is paused${c.statusReason ? `: ${c.statusReason}` : ''}; look, then \`berth campaigns resume ${id}\` or \`berth campaigns abort ${id}\``);
      return WATCH_EXIT[outcome];
    }
    await io.sleep(intervalMs);
  }
}

/** How often `--watch` polls when --interval is left out (a CLI setting, not the server's). */
const WATCH_INTERVAL = '1s';

const statusCmd: Command = {
  usage: `berth campaigns status ID [--watch [--interval ${WATCH_INTERVAL}]] [--output json]   (ID: the id or a unique prefix of it)`,
  about: 'progress per wave and per state, failing devices; --watch follows it live (exit 0 completed, 1 failed/aborted, 3 paused)',
  options: {
    watch: { type: 'boolean', short: 'w', description: 'follow it live: bars on a terminal, a line per change on a pipe' },
    interval: { type: 'string', value: 'DUR', default: WATCH_INTERVAL, description: 'how often --watch asks the control plane (at least 100ms)' },
  },
  args: ['campaign'],
  examples: ['berth campaigns status 4f2a1c9e', 'berth campaigns status 4f2a --watch', 'berth campaigns status cmp_4f2a1c9e -o json'],
  async run(ctx) {
    const { io, args, usage, client } = ctx;
    const [typed] = requirePositionals(args, ['ID'], usage);
    const interval = stringFlag(args, 'interval');
    const intervalMs = parseDuration(interval ?? WATCH_INTERVAL, '--interval');
    if (args.values.watch === true) {
      if (args.output === 'json') throw usageError('--watch draws progress for people; for scripts poll with --output json', usage);
    }
    const cl = await client();
    const id = await campaignIdOf(typed, () => cl.listCampaigns());
    if (args.values.watch === true) return watch(ctx, id, Math.max(100, intervalMs));
    const c = await cl.campaign(id);
    if (args.output === 'json') { printJson(io, c); return 0; }
    io.out(renderCampaign(c, io.now(), colorEnabled(io.isTTY, io.env)));
    return 0;
  },
};

export const campaignCommands: Record<string, Command> = {
  create: createCmd,
  start: actionCmd('start', 'start a created campaign'),
  pause: actionCmd('pause', 'pause a running campaign (devices already updated stay)'),
  resume: actionCmd('resume', 'resume a paused campaign'),
  abort: actionCmd('abort', "abort a campaign: its devices go back to the manifest each ran before"),
  status: statusCmd,
  list: listCmd,
};
