import { requirePositionals } from '../args.js';
import { confirmDestructive, yesOption } from '../confirm.js';
import { printJson, type Command } from '../context.js';
import { formatAgo, renderTable } from '../format.js';

const list: Command = {
  usage: 'berth keys list [--output json]',
  about: 'the signing keys, newest first: active (signs), retired (verifies until), revoked; never a private key',
  options: {},
  examples: ['berth keys list', 'berth keys list -o wide'],
  async run({ io, args, client }) {
    const keys = await (await client()).listKeys();
    if (args.output === 'json') { printJson(io, keys); return 0; }
    const now = io.now();
    io.out(renderTable([
      { header: 'kid', get: (k) => k.kid },
      { header: 'state', get: (k) => k.state },
      { header: 'created', get: (k) => (args.wide ? k.createdAt : formatAgo(k.createdAt, now)) },
      { header: 'verifies until', get: (k) => (k.state === 'active' ? '(signs)' : k.verifiesUntil === null ? '-' : args.wide ? k.verifiesUntil : formatAgo(k.verifiesUntil, now)) },
      { header: 'in jwks', get: (k) => (k.inJwks ? 'yes' : 'no') },
    ], keys));
    return 0;
  },
};

const rotate: Command = {
  usage: 'berth keys rotate [--output json]',
  about: 'a new signing key signs from now on; the old one verifies what it signed until that expires',
  options: {},
  examples: ['berth keys rotate', 'berth keys rotate -o json'],
  async run({ io, args, client }) {
    const r = await (await client()).rotateKey();
    if (args.output === 'json') { printJson(io, r); return 0; }
    io.out(`signing key ${r.kid}: active (retired ${r.retired.join(', ') || 'none'})`);
    return 0;
  },
};

const revoke: Command = {
  usage: 'berth keys revoke KID [--yes] [--output json]',
  about: 'revoke a signing key at once (a leaked key): everything it signed is refused; devices renew',
  options: { ...yesOption },
  examples: ['berth keys revoke k-2026-11-01-1a2b3c4d', 'berth keys revoke k-2026-11-01-1a2b3c4d --yes'],
  async run({ io, args, usage, client }) {
    const [kid] = requirePositionals(args, ['KID'], usage);
    await confirmDestructive(io, args.values.yes === true, { action: `revoke signing key ${kid}`, consequence: `every document and token ${kid} signed is refused at once; devices fetch documents signed anew` });
    const r = await (await client()).revokeKey(kid);
    if (args.output === 'json') { printJson(io, r); return 0; }
    io.out(`signing key ${r.kid}: revoked; ${r.active} signs now`);
    return 0;
  },
};

export const keyCommands = { list, rotate, revoke };
