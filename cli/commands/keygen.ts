import { access } from 'node:fs/promises';
import { writeKeyPair } from '../../protocol/keys.js';
import { requireFlag, requirePositionals } from '../args.js';
import type { Command } from '../context.js';
import { CliError } from '../errors.js';

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

export const keygen: Command = {
  usage: 'berth keygen --out FILE',
  about: 'write an Ed25519 key pair: FILE (private, PKCS#8 PEM, mode 0600) and FILE.pub; print the public key as a manufacturer records it (base64url of its 32 raw bytes)',
  options: { out: { type: 'string', value: 'FILE', complete: 'file', description: 'where the private key goes (mode 0600); the public key goes to FILE.pub (required)' } },
  examples: ['berth keygen --out gw-0042.key'],
  async run({ io, args, usage }) {
    requirePositionals(args, [], usage);
    const out = requireFlag(args, 'out', usage);
    // Check both names first so a refusal leaves nothing half-written (writeKeyPair itself refuses FILE with 'wx').
    for (const path of [out, out + '.pub']) {
      if (await exists(path)) throw new CliError(`${path} already exists; refusing to overwrite a key`, 'move it away or choose another --out');
    }
    try {
      io.out(await writeKeyPair(out));
    } catch (err) {
      throw new CliError(`cannot write ${out}: ${(err as Error).message}`, 'check the path and the permissions of its directory');
    }
    return 0;
  },
};
