import { printJson, type Command } from '../context.js';
import { shortIds } from '../ids.js';
import { formatAgo, renderFields, renderTable, truncate } from '../format.js';
import { fleetRoutes } from '../../protocol/fleet.js';

/** `berth fleet status`: the console's overview as text (or `-o json`, the route's answer as it is). */

const nonZero = (counts: Record<string, number>) => Object.entries(counts).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`).join(', ') || 'none';

const status: Command = {
  usage: 'berth fleet status [--output json]',
  about: 'the fleet at a glance: devices online, in sync, updating, failed; active campaigns and their waves; recent failures',
  options: {},
  examples: ['berth fleet status', 'berth fleet status -o json'],
  async run({ io, args, client }) {
    const { body: f } = await (await client()).call('fleet status', fleetRoutes.status);
    if (args.output === 'json') { printJson(io, f); return 0; }
    const d = f.devices;
    io.out(renderFields([
      ['devices', `${d.total} enrolled: ${d.online} online, ${d.offline} offline (silent over ${f.offlineAfter})`],
      ['sync', `${d.sync['in-sync']} in sync, ${d.sync.updating} updating, ${d.sync.failed} failed, ${d.sync.drifting} drifting, ${d.sync.unassigned} unassigned`],
      ['phases', nonZero(d.phases)],
      ['campaigns', nonZero(f.campaigns.byStatus)],
    ]));
    if (f.campaigns.active.length) {
      // Short ids people can type back (berth campaigns status PREFIX); -o wide keeps them whole.
      const short = shortIds(f.campaigns.active.map((c) => c.id));
      io.out('');
      io.out(renderTable([
        { header: 'campaign', get: (c) => (args.wide ? c.id : short.get(c.id) ?? c.id) },
        { header: 'name', get: (c) => c.name },
        { header: 'manifest', get: (c) => c.manifest },
        { header: 'status', get: (c) => c.status },
        { header: 'wave', get: (c) => `${c.currentWave}/${c.waves.length}` },
        { header: 'ok', get: (c) => String(c.devices.succeeded), align: 'right' },
        { header: 'busy', get: (c) => String(c.devices.assigned), align: 'right' },
        { header: 'failed', get: (c) => String(c.devices.failed + (c.devices['timed-out'] ?? 0) + c.devices['rolled-back']), align: 'right' },
        { header: 'pending', get: (c) => String(c.devices.pending), align: 'right' },
      ], f.campaigns.active));
    }
    if (f.recentFailures.length) {
      io.out('');
      io.out(renderTable([
        { header: 'device', get: (r) => r.serial },
        { header: 'phase', get: (r) => r.phase },
        { header: 'release', get: (r) => r.release ?? '' },
        { header: 'when', get: (r) => formatAgo(r.at, io.now()) },
        { header: 'error', get: (r) => truncate(r.error ?? '', 80) },
      ], f.recentFailures));
    }
    return 0;
  },
};

export const fleetCommands: Record<string, Command> = { status };
