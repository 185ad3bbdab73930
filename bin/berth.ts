#!/usr/bin/env node
/**
 * The one `berth` command. Each subcommand lives in its component and is loaded on demand, so a
 * gateway running `berth edge-daemon` never loads the control plane's code (memory matters there).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { gatewayHeap, loadGateway } from './gateway-bundle.js';

type Main = (argv: string[]) => Promise<number | void>;

const COMMANDS: Record<string, { about: string; load: () => Promise<Main> }> = {
  'control-plane': { about: 'run the control plane (fleet, enrollment, manifests, twins, campaigns)', load: async () => (await import('../control-plane/service.js')).main },
  'registry-proxy': { about: 'run the registry proxy (pull-through OCI mirror, the download channel)', load: async () => (await import('../registry-proxy/index.js')).main },
  // A gateway runs dist/bin/edge-daemon.cjs, the same daemon without Node's ES module loader (bin/gateway-entry.ts).
  'edge-daemon': { about: 'run the gateway daemon (enroll, download, reconcile, report)', load: async () => (gatewayHeap(), (await loadGateway(new URL('../', import.meta.url), createRequire(import.meta.url))).main) },
};

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
