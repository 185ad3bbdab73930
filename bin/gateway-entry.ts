import { pathToFileURL } from 'node:url';
import { gatewayHeap, loadGateway } from './gateway-bundle.js';

/**
 * The gateway's entry (issue 11): `node dist/bin/edge-daemon.cjs [flags]`, the flags of
 * `berth edge-daemon`. `npm run build` bundles this file as CommonJS (scripts/bundle-gateway.ts),
 * so a gateway's Node never starts its ES module loader: an ES module entry, like dist/bin/berth.js,
 * loads ten more built-in modules for it (resolve, translators, module jobs and maps) and keeps
 * their records, ≈ 0.5 MiB resident (edge-daemon/README.md, Ninth pass). It must stay CommonJS all
 * the way: the bundle it loads (daemon.cjs) has no `import()` left, and `require` here is the
 * entry's own, not node:module's createRequire (which loads the ES loader for `module.register`).
 * Not run as the compiled ES module (dist/bin/gateway-entry.js): `__filename` is the bundle's.
 */
gatewayHeap(); // before the daemon's code is compiled
loadGateway(new URL('../', pathToFileURL(__filename)), require)
  .then(({ main }) => main(process.argv.slice(2)))
  .then(
    (code) => {
      process.exitCode = typeof code === 'number' ? code : 0;
    },
    (err: unknown) => {
      console.error(`berth edge-daemon: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    },
  );
