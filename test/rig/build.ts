import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const SOURCES = ['bin', 'cli', 'scripts', 'common', 'manifests', 'protocol', 'control-plane', 'registry-proxy', 'edge-daemon', 'test'];

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/**
 * Several tests run the compiled CLI (`node dist/bin/berth.js`), as an operator would. The build
 * happens once, here, before any test file starts: a test file that rebuilt dist/ itself would
 * rewrite modules under a child process that another test file is starting at that moment. `npm test`
 * has built already, so this only compiles when a source is newer than the build (vitest run directly
 * on an edited tree), then bundles the gateway as `npm run build` does. Type errors do not stop tsc
 * from emitting; the entry must exist afterwards.
 */
export function buildIfStale(root: string): void {
  const entry = join(root, 'dist/bin/berth.js');
  const built = existsSync(entry) ? statSync(entry).mtimeMs : 0;
  const newest = Math.max(...SOURCES.map((d) => (existsSync(join(root, d)) ? newestSource(join(root, d)) : 0)));
  if (built >= newest) return;
  console.log('[rig] dist/ is older than the sources: compiling once');
  spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', root], { stdio: 'ignore' });
  if (!existsSync(entry)) throw new Error(`${entry} was not built`);
  // npm run build's second step: tsc alone leaves the gateway bundle older than its inputs, and
  // `berth edge-daemon` would run the compiled modules instead (bin/gateway-bundle.ts), 5 MiB more.
  const bundled = spawnSync(process.execPath, [join(root, 'dist/scripts/bundle-gateway.js')], { encoding: 'utf8' });
  if (bundled.status !== 0) throw new Error(`the gateway bundle was not built: ${bundled.stderr}`);
}
