import { parseDuration } from '../../common/grammar.js';
import { roles } from '../../protocol/route.js';
import { requireFlag, requirePositionals, stringFlag } from '../args.js';
import { confirmDestructive, yesOption } from '../confirm.js';
import { printJson, type Command } from '../context.js';
import { CliError } from '../errors.js';
import { formatAgo, renderTable } from '../format.js';

const ROLES: readonly string[] = roles;

const create: Command = {
  usage: 'berth tokens create --role admin|release-manager|viewer [--name NAME] [--expires 30d]',
  about: 'create an operator token (printed once, on stdout alone)',
  options: {
    role: { type: 'string', value: 'ROLE', choices: roles, description: `${roles.join(', ')} (required)` },
    name: { type: 'string', value: 'NAME', description: 'who or what holds it' },
    expires: { type: 'string', value: 'DUR', default: 'never', description: 'lifetime, at least 1m (30d, 12h)' },
  },
  examples: ['berth tokens create --role viewer --name grafana --expires 90d', 'T=$(berth tokens create --role release-manager --name ci)'],
  async run({ io, args, usage, client }) {
    const flag = requireFlag(args, 'role', usage);
    const role = roles.find((r) => r === flag);
    if (!role) throw new CliError(`--role ${JSON.stringify(flag)} is not a role`, `roles: ${ROLES.join(', ')}`, 2);
    const expires = stringFlag(args, 'expires');
    const expiresInSeconds = expires === undefined ? undefined : Math.round(parseDuration(expires, '--expires') / 1000);
    if (expiresInSeconds !== undefined && expiresInSeconds < 60) throw new CliError('--expires must be at least 1m', undefined, 2);
    const name = stringFlag(args, 'name') ?? `${role}-${io.now().toISOString().slice(0, 10)}`;
    const t = await (await client()).createToken({ role, name, expiresInSeconds });
    if (args.output === 'json') { printJson(io, t); return 0; }
    // The secret goes to stdout alone so `T=$(berth tokens create …)` captures exactly it.
    io.err(`created token ${t.id} (${t.role}${t.expiresAt ? `, expires ${t.expiresAt}` : ', no expiry'}); it is shown only now:`);
    io.out(t.token);
    return 0;
  },
};

const list: Command = {
  usage: 'berth tokens list [--output json]',
  about: 'operator tokens (never their secrets)',
  options: {},
  examples: ['berth tokens list'],
  async run({ io, args, client }) {
    const items = await (await client()).listTokens();
    if (args.output === 'json') { printJson(io, items); return 0; }
    const now = io.now();
    io.out(renderTable([
      { header: 'id', get: (t) => t.id },
      { header: 'name', get: (t) => t.name || '-' },
      { header: 'role', get: (t) => t.role },
      { header: 'created', get: (t) => `${formatAgo(t.createdAt, now)}${t.createdBy ? ` by ${t.createdBy}` : ''}` },
      { header: 'expires', get: (t) => formatAgo(t.expiresAt, now) },
      { header: 'state', get: (t) => (t.revokedAt ? 'revoked' : t.expiresAt && new Date(t.expiresAt) <= now ? 'expired' : 'active') },
    ], items));
    return 0;
  },
};

const revoke: Command = {
  usage: 'berth tokens revoke ID [--yes]',
  about: 'revoke an operator token at once',
  options: { ...yesOption },
  examples: ['berth tokens revoke tok_3', 'berth tokens revoke tok_3 --yes'],
  async run({ io, args, usage, client }) {
    const [id] = requirePositionals(args, ['ID'], usage);
    await confirmDestructive(io, args.values.yes === true, { action: `revoke token ${id}`, consequence: `whoever uses operator token ${id} is refused from now on` });
    const t = await (await client()).revokeToken(id);
    if (args.output === 'json') { printJson(io, t); return 0; }
    io.out(`token ${id}: revoked`);
    return 0;
  },
};

export const tokenCommands: Record<string, Command> = { create, list, revoke };
