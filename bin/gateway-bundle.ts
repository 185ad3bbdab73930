import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The gateway bundle (issue 11): `npm run build` writes the edge daemon and everything it loads as
 * a few minified ES modules, `edge-daemon/gateway/` under dist/ (scripts/bundle-gateway.ts), and
 * `berth edge-daemon` runs its `index.js`. A dozen scripts instead of ~170 modules: fewer module
 * records, short ASCII sources instead of many two-byte ones (comments with → and —, zod's
 * files), only the English zod locale, and what the daemon imports on demand (TLS trust, the
 * handover registry) still in chunks of its own: ≈ 4 MiB less resident at idle
 * (edge-daemon/README.md, Fourth pass).
 *
 * A bundle older than any file it was built from is stale (`npx tsc -p .` alone, after a
 * `npm run build`): the daemon then runs the compiled modules, never old code, and says so.
 */

/** Next to the bundle: the files it was built from, relative to dist/, to tell a stale bundle. */
export const GATEWAY_DIR = 'edge-daemon/gateway/';
export const GATEWAY_BUNDLE = `${GATEWAY_DIR}index.js`;
export const GATEWAY_INPUTS = `${GATEWAY_DIR}inputs.json`;

export type BundleState = { use: 'bundle' } | { use: 'modules'; why: string };

/** Whether dist/'s gateway bundle may run: it exists, with its inputs list, and no input is newer. */
export function gatewayBundleState(distDir: URL): BundleState {
  const bundle = new URL(GATEWAY_BUNDLE, distDir);
  let built: number;
  let inputs: string[];
  try {
    built = statSync(bundle).mtimeMs;
    inputs = (JSON.parse(readFileSync(new URL(GATEWAY_INPUTS, distDir), 'utf8')) as { inputs: string[] }).inputs;
  } catch {
    return { use: 'modules', why: `no gateway bundle at ${fileURLToPath(bundle)} (npm run build writes it)` };
  }
  for (const input of inputs) {
    let changed: number;
    try {
      changed = statSync(new URL(input, distDir)).mtimeMs;
    } catch {
      continue; // not shipped next to dist/ (the bundle holds its code): nothing to compare
    }
    if (changed > built) return { use: 'modules', why: `the gateway bundle is older than ${input} (npm run build rewrites it)` };
  }
  return { use: 'bundle' };
}
