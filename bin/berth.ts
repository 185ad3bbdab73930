#!/usr/bin/env node
/**
 * The one `berth` command. Each subcommand lives in its component and is loaded on demand, so a
 * gateway running `berth edge-daemon` never loads the control plane's code (memory matters there).
 */
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { gatewayBundleState, GATEWAY_BUNDLE } from './gateway-bundle.js';

type Main = (argv: string[]) => Promise<number | void>;

const COMMANDS: Record<string, { about: string; load: () => Promise<Main> }> = {
  'control-plane': { about: 'run the control plane (fleet, enrollment, manifests, twins, campaigns)', load: async () => (await import('../control-plane/service.js')).main },
  'registry-proxy': { about: 'run the registry proxy (pull-through OCI mirror, the download channel)', load: async () => (await import('../registry-proxy/index.js')).main },
  'edge-daemon': { about: 'run the gateway daemon (enroll, download, reconcile, report)', load: async () => (gatewayHeap(), (await loadGateway()).main) },
};

/**
 * The gateway's heap, set before the daemon's code loads (issue 11: at most 50 MiB idle, 80 MiB
 * while updating). V8 doubles its young generation up to 2 × 16 MiB whenever much of it survives a
 * scavenge (start-up, a download), and never gives it back: some 30 MiB of RSS for garbage that
 * lived a moment. A growth factor of 1 keeps it at its initial 2 × 1 MiB, for a few more
 * scavenges. Unlike --max-semi-space-size, this flag is read at every scavenge, so it can be set
 * here, without a wrapper process or NODE_OPTIONS (`berth edge-daemon` as the unit runs it).
 *
 * The daemon's hot paths are native (hashing, zstd, zlib, sockets, JSON), so its JavaScript runs
 * interpreted: `--max-opt=0` never tiers up to Sparkplug or TurboFan, whose compiled code and the
 * compiler's own pages of the node binary cost several MiB resident; regular expressions are
 * interpreted too, and V8 favours size where it has the choice. Measured side by side (quick
 * daemon-footprint bench, `--max-opt=0` alone, edge-daemon/README.md): idle 71.6 → 68 MiB, update
 * peaks 79.3 → 75.0 (full layer) and 88.0 → 76.5 MiB (delta), for 0.4–0.6 s more daemon CPU per
 * update of a 20 MB layer. They are read when code is compiled, so setting them here, before the
 * daemon's modules load, covers all of its code.
 */
const GATEWAY_V8_FLAGS = ['--semi-space-growth-factor=1', '--max-opt=0', '--regexp-interpret-all', '--optimize-for-size'];

function gatewayHeap(): void {
  for (const flag of GATEWAY_V8_FLAGS) setFlagsFromString(flag);
}

/**
 * The daemon as one bundle (bin/gateway-bundle.ts: ≈ 3 MiB less resident), or its compiled modules
 * when dist/ has no fresh bundle, with a line on stderr saying why.
 */
async function loadGateway(): Promise<{ main: Main }> {
  const dist = new URL('../', import.meta.url);
  const state = gatewayBundleState(dist);
  if (state.use === 'bundle') return (await import(new URL(GATEWAY_BUNDLE, dist).href)) as { main: Main };
  console.error(`berth edge-daemon: running the compiled modules: ${state.why}`);
  return import('../edge-daemon/index.js');
}

/** The services, then the CLI's verbs from its light table (declarations only: no verb's code is loaded). */
async function usage(): Promise<string> {
  const [{ VERBS }, { isLeaf }] = await Promise.all([import('../cli/verbs.js'), import('../cli/framework.js')]);
  const lines = ['usage: berth <command> [options]', '', 'services:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(16)}${c.about}`);
  lines.push('', 'release manager and operator verbs (manifests validate|schema and keygen work offline):');
  for (const [name, verb] of Object.entries(VERBS)) {
    if (isLeaf(verb)) {
      if (!verb.hidden) lines.push(`  ${name.padEnd(16)}${verb.about}`);
    } else lines.push(`  ${name.padEnd(16)}${Object.keys(verb).join(' | ')}`);
  }
  lines.push('', 'Run `berth <command> --help` or `berth help <verb> [subcommand]` for its options and examples; `berth --version` for the release.');
  lines.push('Nouns are plural (devices, campaigns); the singular works too. Shell completion: `berth completion bash|zsh|fish`.');
  return lines.join('\n');
}

/** The package's version: package.json sits two folders up in dist/, one up in the sources. */
function version(): string {
  for (const up of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'berth' && pkg.version) return pkg.version;
    } catch {
      // not at this level; try the next
    }
  }
  return 'unknown';
}

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || (command === 'help' && rest.length === 0)) {
    console.log(await usage());
    return 0;
  }
  if (command === '--version' || command === 'version') {
    console.log(`berth ${version()}`);
    return 0;
  }
  let main: Main;
  // `registry-proxy warm` is an operator verb of cli/ that kept the service's noun.
  if (command === 'registry-proxy' && rest[0] === 'warm') return (await import('../cli/index.js')).main(argv);
  if (COMMANDS[command]) main = await COMMANDS[command].load();
  // A global flag before the verb (`berth --server URL devices list`) is the CLI's too; cli/ loads only the verb asked for.
  else if (command === 'help' || command.startsWith('-') || (await import('../cli/verbs.js')).verbNamed(command)) main = (await import('../cli/index.js')).main;
  else {
    console.error(`berth: unknown command ${JSON.stringify(command)}\n\n${await usage()}`);
    return 2;
  }
  const code = await main(COMMANDS[command] ? rest : argv);
  return typeof code === 'number' ? code : 0;
}

run(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    console.error(`berth: ${err instanceof Error ? err.message : String(err)}`);
    if (process.argv.includes('--debug') && err instanceof Error) console.error(err.stack);
    process.exitCode = 1;
  },
);
