import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The gateway bundle (issue 11): `npm run build` writes the edge daemon and everything it loads as
 * one minified ES module, `edge-daemon/gateway.js` under dist/ (scripts/bundle-gateway.ts), and
 * `berth edge-daemon` runs it. One script instead of ~170 modules: fewer module records, one
 * short ASCII source instead of many two-byte ones (comments with → and —, zod's files), and
 * only the English zod locale: ≈ 3 MiB less resident at idle (edge-daemon/README.md, Fourth pass).
 *
 * A bundle older than any file it was built from is stale (`npx tsc -p .` alone, after a
 * `npm run build`): the daemon then runs the compiled modules, never old code, and says so.
 */

/** Next to the bundle: the files it was built from, relative to dist/, to tell a stale bundle. */
export const GATEWAY_BUNDLE = 'edge-daemon/gateway.js';
export const GATEWAY_INPUTS = 'edge-daemon/gateway.inputs.json';

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
