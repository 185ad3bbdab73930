import { readFile } from 'node:fs/promises';
import { requirePositionals, scopeFlag, scopeOptions, stringFlag } from '../args.js';
import { confirmDestructive, yesOption } from '../confirm.js';
import { printJson, type Command } from '../context.js';
import { CliError, usageError } from '../errors.js';
import { renderTable } from '../format.js';
import type { SecretScope } from '../../protocol/secrets.js';

/**
 * `berth secrets set|list|rm`: values for the manifests' `secrets:`, per device, selector or fleet.
 * A value is read from a file or stdin, never from the command line (argv is visible to every
 * user of the machine and lands in shell histories), and is never printed back.
 */

const SCOPE_HELP = `Give exactly one scope. A device's secret beats a selector's, which beats the fleet's; two selector
values that match one device are a conflict.`;
function describeScope(s: { scope: SecretScope; target?: string | null }): string {
  return s.scope === 'fleet' ? 'the fleet' : s.scope === 'device' ? `device ${s.target}` : `devices matching ${s.target}`;
}

const set: Command = {
  usage: 'berth secrets set NAME (--device SERIAL | --selector SEL | --fleet) (--from-file F | --from-stdin)',
  about: 'set or rotate a secret (release-manager; audited without the value); devices get it at their next rollout',
  help: `${SCOPE_HELP}
The value is never taken from the command line. A rotation reaches devices like any change: roll the
manifest out again (campaigns create … or --reconfigure).`,
  options: {
    ...scopeOptions,
    'from-file': { type: 'string', value: 'F', complete: 'file', description: "the value is the file's exact bytes (up to 64 KiB)" },
    'from-stdin': { type: 'boolean', description: "the value is stdin's exact text (a trailing newline is kept: use printf, not echo)" },
  },
  examples: ['berth secrets set DB_PASSWORD --fleet --from-file db.pass', "printf %s \"$TOKEN\" | berth secrets set API_TOKEN --selector site=berlin --from-stdin"],
  async run(ctx) {
    const { io, args, usage, client } = ctx;
    const [name] = requirePositionals(args, ['NAME'], usage);
    const scope = scopeFlag(args, usage);
    const file = stringFlag(args, 'from-file');
    const stdin = args.values['from-stdin'] === true;
    if ((file !== undefined) === stdin) throw usageError('give exactly one of --from-file F, --from-stdin (never the value itself)', usage);
    let value: Buffer;
    try {
      value = file !== undefined ? await readFile(file) : Buffer.from(await io.readStdin(), 'utf8');
    } catch (err) {
      throw new CliError(`cannot read the value from ${file}: ${(err as Error).message}`);
    }
    if (!value.length) throw new CliError(`the value of ${name} is empty (${file ?? 'stdin'})`);
    const s = await (await client()).setSecret(name, { ...scope, value: value.toString('base64') });
    value.fill(0);
    if (args.output === 'json') { printJson(io, s); return 0; }
    io.out(`secret ${s.name} for ${describeScope(s)} is at version ${s.version}`);
    return 0;
  },
};

const list: Command = {
  usage: 'berth secrets list [--output json]',
  about: 'secrets: names, scopes and versions, never values',
  options: {},
  examples: ['berth secrets list', 'berth secrets list -o json'],
  async run({ io, args, client }) {
    const items = await (await client()).listSecrets();
    if (args.output === 'json') { printJson(io, items); return 0; }
    if (!items.length) { io.out('no secrets (berth secrets set NAME --fleet --from-file F)'); return 0; }
    io.out(renderTable([
      { header: 'name', get: (s) => s.name },
      { header: 'scope', get: (s) => s.scope },
      { header: 'target', get: (s) => s.target ?? '' },
      { header: 'version', get: (s) => String(s.version), align: 'right' },
      { header: 'updated', get: (s) => `${s.updatedAt} by ${s.updatedBy}` },
    ], items));
    return 0;
  },
};

const rm: Command = {
  usage: 'berth secrets rm NAME (--device SERIAL | --selector SEL | --fleet) [--yes]',
  about: 'remove a secret from one scope (release-manager; audited); devices already assigned keep their copy',
  help: SCOPE_HELP,
  options: { ...scopeOptions, ...yesOption },
  examples: ['berth secrets rm API_TOKEN --selector site=berlin', 'berth secrets rm DB_PASSWORD --fleet --yes'],
  async run(ctx) {
    const { io, args, usage, client } = ctx;
    const [name] = requirePositionals(args, ['NAME'], usage);
    const scope = scopeFlag(args, usage);
    const where = scope.scope === 'fleet' ? 'the fleet' : `${scope.scope} ${scope.target}`;
    await confirmDestructive(io, args.values.yes === true, { action: `remove secret ${name} for ${where}`, consequence: `the value of ${name} for ${where} is deleted; the next rollout there has none (or a wider scope's)` });
    const s = await (await client()).removeSecret(name, scope);
    if (args.output === 'json') { printJson(io, s); return 0; }
    io.out(`removed secret ${s.name} (version ${s.version}) for ${describeScope(s)}`);
    return 0;
  },
};

export const secretCommands: Record<string, Command> = { set, list, rm };
