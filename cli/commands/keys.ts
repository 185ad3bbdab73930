import { requirePositionals } from '../args.js';
import { printJson, type Command } from '../context.js';

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
  usage: 'berth keys revoke KID [--output json]',
  about: 'revoke a signing key at once (a leaked key): everything it signed is refused; devices renew',
  options: {},
  examples: ['berth keys revoke k_2026-11-01'],
  async run({ io, args, usage, client }) {
    const [kid] = requirePositionals(args, ['KID'], usage);
    const r = await (await client()).revokeKey(kid);
    if (args.output === 'json') { printJson(io, r); return 0; }
    io.out(`signing key ${r.kid}: revoked; ${r.active} signs now`);
    return 0;
  },
};

export const keyCommands = { rotate, revoke };
