import { requireFlag, requirePositionals } from '../args.js';
import { confirmDestructive, yesOption } from '../confirm.js';
import { printJson, type Command, type Io } from '../context.js';
import { CliError } from '../errors.js';
import { renderFields, renderTable } from '../format.js';
import { formatPrivilege, type Privilege } from '../../manifests/privileges.js';

/** `berth policies set|list|show|rm`: which privileges manifests may ask for, per group of devices. */

const SET_USAGE = 'berth policies set NAME --selector SEL --allow KEY=VALUE[,VALUE…] [--allow …] [--allow privileged]';

function allowFlags(values: Record<string, unknown>): string[] {
  const v = values.allow;
  return Array.isArray(v) ? v.map(String) : typeof v === 'string' ? [v] : [];
}

const set: Command = {
  usage: SET_USAGE,
  about: 'grant privileges to the devices a selector picks (admin; audited); replaces the policy of that name',
  help: `--allow keys: privileged, devices, cap_add, group_add, binds, network_mode, pid, ipc, sysctls, security_opt,
ports. Paths take globs (/dev/ttyUSB*, /srv/**), binds :ro, ports numbers, ranges (8000-8100), ephemeral
or *, optionally /udp (manifests/README.md, "Privileges").`,
  options: {
    selector: { type: 'string', short: 'l', value: 'SEL', description: 'the devices it grants to (hw=zigbee, site in (berlin,paris)) (required)' },
    allow: { type: 'string', multiple: true, value: 'KEY=V,…', description: 'a privilege the devices may be given (at least one)' },
  },
  examples: ["berth policies set zigbee --selector hw=zigbee --allow devices=/dev/ttyUSB* --allow group_add=dialout", 'berth policies set vpn -l role=vpn --allow cap_add=NET_ADMIN --allow network_mode=host'],
  async run({ io, args, usage, client }) {
    const [name] = requirePositionals(args, ['NAME'], usage);
    const selector = requireFlag(args, 'selector', usage);
    const allow = allowFlags(args.values);
    if (!allow.length) throw new CliError('--allow is required (at least one KEY=VALUE)', `usage: ${usage}`, 2);
    const p = await (await client()).setPolicy(name, { selector, allow });
    if (args.output === 'json') { printJson(io, p); return 0; }
    io.out(`policy ${p.name} grants ${p.allow.join(' ')} to ${p.devices} device(s) matching ${p.selector}`);
    return 0;
  },
};

const list: Command = {
  usage: 'berth policies list [--output json]',
  about: 'privilege policies, with how many devices each matches now',
  options: {},
  examples: ['berth policies list'],
  async run({ io, args, client }) {
    const items = await (await client()).listPolicies();
    if (args.output === 'json') { printJson(io, items); return 0; }
    if (!items.length) { io.out('no policies: manifests that ask for privileges cannot be rolled out (berth policies set …)'); return 0; }
    io.out(renderTable([
      { header: 'name', get: (p) => p.name },
      { header: 'selector', get: (p) => p.selector },
      { header: 'devices', get: (p) => String(p.devices), align: 'right' },
      { header: 'allows', get: (p) => p.allow.join(' ') },
    ], items));
    return 0;
  },
};

const show: Command = {
  usage: 'berth policies show NAME [--output json]',
  about: 'one privilege policy',
  options: {},
  examples: ['berth policies show zigbee'],
  async run({ io, args, usage, client }) {
    const [name] = requirePositionals(args, ['NAME'], usage);
    const p = await (await client()).policy(name);
    if (args.output === 'json') { printJson(io, p); return 0; }
    io.out(renderFields([['policy', p.name], ['selector', `${p.selector} (${p.devices} device(s) now)`], ['allows', p.allow.join('\n')], ['updated', `${p.updatedAt} by ${p.updatedBy}`]]));
    return 0;
  },
};

const rm: Command = {
  usage: 'berth policies rm NAME [--yes]',
  about: 'remove a privilege policy (admin; audited); releases already assigned stay',
  options: { ...yesOption },
  examples: ['berth policies rm zigbee', 'berth policies rm zigbee --yes'],
  async run({ io, args, usage, client }) {
    const [name] = requirePositionals(args, ['NAME'], usage);
    await confirmDestructive(io, args.values.yes === true, { action: `remove policy ${name}`, consequence: `the privileges policy ${name} grants are granted no more: rollouts that need them are refused` });
    const p = await (await client()).removePolicy(name);
    if (args.output === 'json') { printJson(io, p); return 0; }
    io.out(`removed policy ${p.name} (it granted ${p.allow.join(' ')} to ${p.selector})`);
    return 0;
  },
};

export const policyCommands: Record<string, Command> = { set, list, show, rm };

/** The privileges block of `apply` and `manifests show`. */
export function printPrivileges(io: Io, privileges: Pick<Privilege, 'key' | 'value' | 'services'>[]): void {
  if (!privileges.length) { io.out('privileges: none (a plain manifest: no policy needed)'); return; }
  io.out('privileges (a rollout needs a policy granting each):');
  for (const p of privileges) io.out(`  ${formatPrivilege(p)}  (${p.services.join(', ')})`);
}

/** `campaign create --dry-run`: the privilege check, nothing created. */
export async function dryRun(io: Io, output: string | undefined, check: { manifest: string; selector: string; devices: number; ok: boolean; privileges: Privilege[]; groups: { message: string }[] }): Promise<number> {
  if (output === 'json') { printJson(io, check); return check.ok ? 0 : 1; }
  io.out(`dry run: ${check.manifest} to ${check.devices} device(s)${check.selector ? ` matching ${check.selector}` : ''}; nothing created`);
  printPrivileges(io, check.privileges);
  if (check.ok) io.out('every target device is granted what it asks for');
  for (const g of check.groups) io.out(`refused: ${g.message}`);
  return check.ok ? 0 : 1;
}

