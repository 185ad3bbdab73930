import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * How a gateway runs a build's daemon (issue 11): `node <dist>/bin/edge-daemon.cjs FLAGS`, the
 * CommonJS entry that never starts Node's ES module loader (bin/gateway-entry.ts); for a build from
 * before that entry (a baseline), `node <dist>/bin/berth.js edge-daemon FLAGS`. `berthBin` is the
 * build's dist/bin/berth.js, as the benches name builds.
 */
export function gatewayCommand(berthBin: string, flags: string[]): { script: string; args: string[] } {
  const entry = join(dirname(berthBin), 'edge-daemon.cjs');
  return existsSync(entry) ? { script: entry, args: flags } : { script: berthBin, args: ['edge-daemon', ...flags] };
}
