import { requirePositionals } from '../positionals.js';
import type { BerthClient } from '../client.js';
import { candidates, completionScript, serialsAfter, SHELLS } from '../completion.js';
import { configPath, loadConfigFile } from '../config.js';
import type { Command } from '../context.js';
import { usageError } from '../errors.js';
import type { ArgKind } from '../framework.js';
import { ALIASES, VERBS } from '../verbs.js';

/**
 * A completion waits for the server this long at most: a slow answer is worse than none.
 * BERTH_COMPLETION_TIMEOUT (a duration) changes it, for a far server or a loaded test machine.
 */
const LOOKUP_TIMEOUT_MS = 2000;
/** Serials offered at once: enough to pick from, cheap for a fleet of 100,000. */
const SERIALS_SHOWN = 50;

export const completion: Command = {
  usage: 'berth completion bash|zsh|fish',
  about: 'print a shell completion script: verbs, subcommands, flags, context names, and serials, manifests and campaign ids from the server',
  options: {},
  help: `Load it in ~/.bashrc with \`source <(berth completion bash)\`, in ~/.zshrc (after compinit) with
\`source <(berth completion zsh)\`, or save \`berth completion fish\` as ~/.config/fish/completions/berth.fish.
Serials, manifests and campaign ids come from the control plane of BERTH_SERVER / \`berth login\` with its
token, in one short request; with no server or a slow one, they are simply not offered.`,
  examples: ['source <(berth completion bash)', 'berth completion fish > ~/.config/fish/completions/berth.fish'],
  async run({ io, args, usage }) {
    const [shell] = requirePositionals(args, ['SHELL'], usage);
    if (!(SHELLS as readonly string[]).includes(shell)) throw usageError(`no completion for ${JSON.stringify(shell)}; use one of: ${SHELLS.join(', ')}`, usage);
    io.out(completionScript(shell as (typeof SHELLS)[number]));
    return 0;
  },
};

/** What the server knows, one short request per completion; any failure is no candidates. */
async function lookup(client: () => Promise<BerthClient>, kind: ArgKind, prefix: string, timeoutMs: number): Promise<string[]> {
  try {
    // The routes (zod schemas) only when the server is asked: completing a verb or a flag needs none.
    const [c, { campaignRoutes }, { devicesRoutes }, { manifestRoutes }] = await Promise.all([client(), import('../../protocol/campaigns.js'), import('../../protocol/devices.js'), import('../../protocol/manifests.js')]);
    if (kind === 'serial') {
      const { body } = await c.call('completing serials', devicesRoutes.list, { query: { limit: String(SERIALS_SHOWN), after: serialsAfter(prefix) }, timeoutMs });
      return body.devices.map((d) => d.serial);
    }
    if (kind === 'release') return (await c.call('completing manifests', manifestRoutes.list, { timeoutMs })).body.manifests.map((m) => `${m.name}@${m.version}`);
    if (kind === 'campaign') return (await c.call('completing campaigns', campaignRoutes.list, { timeoutMs })).body.campaigns.map((x) => x.id);
  } catch {
    // No server, no token, a refusal or a timeout: completion offers nothing rather than an error.
  }
  return [];
}

/** Context names come from the local config file (no server); an unreadable file offers none. */
async function contextNames(env: NodeJS.ProcessEnv, home: string): Promise<string[]> {
  try {
    return Object.keys((await loadConfigFile(configPath(env, home))).contexts).sort();
  } catch {
    return [];
  }
}

/**
 * `berth __complete -- WORD…`: the candidates for the last word, one a line (the scripts call it on
 * every TAB). It reads the light verb table (cli/verbs.ts), so it loads no verb's code.
 */
export const complete: Command = {
  usage: 'berth __complete -- WORD…',
  about: 'the candidates for the last word, for the shell completion scripts',
  hidden: true,
  options: {},
  examples: ['berth __complete -- devices show gw-'],
  async run({ io, args, client }) {
    const set = io.env.BERTH_COMPLETION_TIMEOUT;
    // The duration grammar (zod) only when the server is asked and the timeout was set.
    const timeoutMs = async () => (set ? (await import('../../common/grammar.js')).parseDuration(set, 'BERTH_COMPLETION_TIMEOUT') : LOOKUP_TIMEOUT_MS);
    const ask = async (kind: ArgKind, prefix: string) => (kind === 'context' ? contextNames(io.env, io.home) : lookup(client, kind, prefix, await timeoutMs()));
    for (const c of await candidates(args.positionals, VERBS, ALIASES, ask)) io.out(c);
    return 0;
  },
};
