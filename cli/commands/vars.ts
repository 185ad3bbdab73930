import { requirePositionals, scopeFlag, scopeOptions, stringFlag, type ParsedCommand } from '../args.js';
import { confirmDestructive, yesOption } from '../confirm.js';
import { printJson, type Command, type Io } from '../context.js';
import { CliError } from '../errors.js';
import { renderTable } from '../format.js';

/**
 * `berth vars set|list|rm`: values for manifests' `${NAME}`, per device, selector or fleet. A value
 * reaches a device only when a campaign (or an assignment) resolves its document again: changing
 * one never changes a running gateway by itself. Values are configuration, visible to viewers and
 * in the audit log; a secret goes through `berth secrets`.
 */

const SCOPE_HELP = `Give exactly one scope. A device's value beats a selector's, which beats the fleet's; two selector
values that both match a device and differ are a conflict (a rollout to it is refused).`;

/** The request body's form of a scope: `{device}`, `{selector}` or `{fleet: true}`. */
function scopeOf(args: ParsedCommand, usage: string): { device?: string; selector?: string; fleet?: true } {
  const s = scopeFlag(args, usage);
  return s.scope === 'device' ? { device: s.target } : s.scope === 'selector' ? { selector: s.target } : { fleet: true };
}

function scopeText(s: { scope: string; target: string }): string {
  return s.scope === 'fleet' ? 'fleet' : `${s.scope} ${s.target}`;
}

const set: Command = {
  usage: 'berth vars set KEY=VALUE… (--device SERIAL | --selector SEL | --fleet)',
  about: 'set variables for one scope (release manager; audited); devices get them at their next campaign',
  help: SCOPE_HELP,
  options: scopeOptions,
  examples: ['berth vars set MQTT_HOST=mqtt.berlin.example.com --selector site=berlin', 'berth vars set LOG_LEVEL=debug --device gw-0042', 'berth vars set TZ=UTC --fleet'],
  async run({ io, args, usage, client }) {
    const pairs = requirePositionals(args, ['KEY=VALUE'], usage, true);
    const values: Record<string, string> = {};
    for (const p of pairs) {
      const eq = p.indexOf('=');
      if (eq <= 0) throw new CliError(`${JSON.stringify(p)}: expected KEY=VALUE (an empty value is KEY=)`, `usage: ${usage}`, 2);
      const key = p.slice(0, eq);
      if (Object.hasOwn(values, key)) throw new CliError(`${key} is given twice`, `usage: ${usage}`, 2);
      values[key] = p.slice(eq + 1);
    }
    const scope = scopeOf(args, usage);
    const rows = await (await client()).setVariables({ values, ...scope });
    if (args.output === 'json') { printJson(io, rows); return 0; }
    for (const r of rows) io.out(`${r.name} set for ${scopeText(r)}`);
    io.out('running devices keep their documents until a campaign resolves them again (berth campaign create --manifest N@V --reconfigure)');
    return 0;
  },
};

const list: Command = {
  usage: 'berth vars list [--device SERIAL] [--output json]',
  about: 'stored variables; with --device, that device\'s effective values and where each comes from',
  options: { device: { type: 'string', value: 'SERIAL', complete: 'serial', description: "that device's effective values, where each comes from, and its conflicts" } },
  examples: ['berth vars list', 'berth vars list --device gw-0042'],
  async run({ io, args, client }) {
    const device = stringFlag(args, 'device');
    const answer = await (await client()).listVariables(device);
    if (args.output === 'json') { printJson(io, answer); return 0; }
    if ('variables' in answer) {
      if (!answer.variables.length) { io.out('no variables (berth vars set KEY=VALUE --fleet|--selector SEL|--device SERIAL)'); return 0; }
      io.out(renderTable([
        { header: 'name', get: (v) => v.name },
        { header: 'scope', get: (v) => scopeText(v) },
        { header: 'value', get: (v) => v.value },
        { header: 'updated', get: (v) => `${v.updatedAt} by ${v.updatedBy}` },
      ], answer.variables));
      return 0;
    }
    if (!answer.values.length && !answer.conflicts.length) io.out(`device ${answer.device}: no variables apply`);
    else if (answer.values.length) io.out(renderTable([
      { header: 'name', get: (v) => v.name },
      { header: 'value', get: (v) => v.value },
      { header: 'from', get: (v) => v.source },
    ], answer.values));
    for (const c of answer.conflicts) io.out(`conflict: ${c.name} — ${c.candidates.map((x) => `selector ${x.selector} gives ${JSON.stringify(x.value)}`).join(', ')} (a rollout that uses ${c.name} is refused for this device)`);
    return answer.conflicts.length ? 1 : 0;
  },
};

const rm: Command = {
  usage: 'berth vars rm KEY (--device SERIAL | --selector SEL | --fleet) [--yes]',
  about: 'remove a variable from one scope (release manager; audited); assigned documents keep their values',
  help: SCOPE_HELP,
  options: { ...scopeOptions, ...yesOption },
  examples: ['berth vars rm LOG_LEVEL --device gw-0042', 'berth vars rm MQTT_HOST --selector site=berlin --yes'],
  async run({ io, args, usage, client }) {
    const [name] = requirePositionals(args, ['KEY'], usage);
    const scope = scopeOf(args, usage);
    const where = scope.fleet ? 'the fleet' : scope.device !== undefined ? `device ${scope.device}` : `selector ${scope.selector}`;
    await confirmDestructive(io, args.values.yes === true, { action: `remove variable ${name} from ${where}`, consequence: `the next rollouts there take ${name} from a wider scope or its default, or are refused` });
    const r = await (await client()).removeVariable(name, scope);
    if (args.output === 'json') { printJson(io, r); return 0; }
    io.out(`removed ${r.name} from ${scopeText(r)} (it was ${JSON.stringify(r.value)})`);
    return 0;
  },
};

export const varsCommands: Record<string, Command> = { set, list, rm };

/** The variables block of `apply` and `manifests show`. */
export function printVariables(io: Io, needs: { name: string; required: boolean; default?: string; message?: string }[]): void {
  if (!needs.length) return;
  io.out('variables (each device needs a value, berth vars set, unless it has a default):');
  for (const n of needs) io.out(`  ${n.name}${n.default !== undefined ? `  default ${JSON.stringify(n.default)}` : ''}${n.required ? '  required' : ''}${n.message ? `  (${n.message})` : ''}`);
}

/** `campaign create --dry-run`: the variables half of the check; 1 when some devices lack a value. */
export function printVariablesCheck(io: Io, check: { ok: boolean; needs: { name: string }[]; groups: { message: string }[] }): number {
  if (!check.needs.length) return 0;
  if (check.ok) io.out(`every target device has a value for ${check.needs.map((n) => n.name).join(', ')}`);
  for (const g of check.groups) io.out(`refused: ${g.message}`);
  return check.ok ? 0 : 1;
}
