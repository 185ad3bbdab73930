#!/usr/bin/env node
/**
 * The one `berth` command. Each subcommand lives in its component and is loaded on demand, so a
 * gateway running `berth edge-daemon` never loads the control plane's code (memory matters there).
 */
type Main = (argv: string[]) => Promise<number | void>;

const COMMANDS: Record<string, { about: string; load: () => Promise<Main> }> = {
  'control-plane': { about: 'run the control plane (fleet, enrollment, manifests, twins, campaigns)', load: async () => (await import('../control-plane/index.js')).main },
  'registry-proxy': { about: 'run the registry proxy (pull-through OCI mirror, the download channel)', load: async () => (await import('../registry-proxy/index.js')).main },
  'edge-daemon': { about: 'run the gateway daemon (enroll, download, reconcile, report)', load: async () => (await import('../edge-daemon/index.js')).main },
  manifest: { about: 'manifest validate FILE…: check deployment manifests', load: async () => (await import('../manifests/cli.js')).manifestMain },
  keygen: { about: 'keygen --out FILE: write an Ed25519 key pair, print the public key', load: async () => (await import('../manifests/cli.js')).keygenMain },
};
const OPERATOR_VERBS = ['login', 'apply', 'manifests', 'devices', 'campaign', 'tokens', 'audit'];

function usage(): string {
  const lines = ['usage: berth <command> [options]', '', 'services and tools:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(16)}${c.about}`);
  lines.push('', 'release manager and operator verbs (talk to the control plane):');
  lines.push(`  ${OPERATOR_VERBS.join(', ')}`, '', 'Run `berth <command> --help` for its options.');
  return lines.join('\n');
}

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    console.log(usage());
    return 0;
  }
  let main: Main;
  if (COMMANDS[command]) main = await COMMANDS[command].load();
  else if (OPERATOR_VERBS.includes(command)) main = (await import('../cli/index.js')).main;
  else {
    console.error(`berth: unknown command ${JSON.stringify(command)}\n\n${usage()}`);
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
