/**
 * `npm run build`'s second step: dist/edge-daemon/gateway/daemon.cjs, the edge daemon as a gateway
 * runs it, and dist/bin/edge-daemon.cjs, the gateway's entry (bin/gateway-bundle.ts says why and
 * when). Everything the daemon loads from dist/ and its pure-JavaScript packages goes into one
 * minified CommonJS script. Its logger is edge-daemon/gateway-log.js instead of pino's; zstd-napi
 * (a native binding) stays a package.
 *
 * zod's index loads its ~60 locales (`export * as locales`), ~0.3 M characters of source kept in
 * the heap; the daemon's messages are zod's English ones, so only `en` is bundled. The schemas
 * themselves are the same modules of protocol/ and manifests/ as every component's.
 *
 *   node dist/scripts/bundle-gateway.js [DIST_DIR]   (default: the dist/ this file is in)
 */
import { rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, type BuildOptions, type Plugin } from 'esbuild';
import { GATEWAY_BUNDLE, GATEWAY_DIR, GATEWAY_ENTRY, GATEWAY_INPUTS } from '../bin/gateway-bundle.js';

/** zod's locale index reduced to English, the locale zod configures by default. */
const englishZodOnly: Plugin = {
  name: 'zod-english-only',
  setup(b) {
    b.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => ({
      contents: 'export { default as en } from "./en.js";\n',
      resolveDir: dirname(args.path),
    }));
  },
};

/**
 * A built-in the daemon imports on demand (`await import('node:https')` for an https: control plane
 * or log upload) becomes a `require` when first needed: an `import()` left in the CommonJS script
 * would start Node's ES module loader on the gateway (bin/gateway-entry.ts).
 */
const requiredOnDemand: Plugin = {
  name: 'required-on-demand',
  setup(b) {
    b.onResolve({ filter: /^node:/ }, (args) => (args.kind === 'dynamic-import' ? { path: args.path, namespace: 'required-on-demand' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'required-on-demand' }, (args) => ({ contents: `module.exports = require(${JSON.stringify(args.path)});\n`, loader: 'js' }));
  },
};

/**
 * node:fs/promises is resolved to edge-daemon/gateway-fs.js, the calls the daemon makes on
 * node:fs's callbacks: node:fs/promises loads readline, fs watchers and directory streams with its
 * FileHandle, 0.36 MiB resident (issue 11, edge-daemon/README.md, Tenth pass). The compiled
 * modules keep node:fs/promises.
 */
function gatewayFs(distDir: string): Plugin {
  return {
    name: 'gateway-fs',
    setup(b) {
      b.onResolve({ filter: /^(node:)?fs\/promises$/ }, () => ({ path: join(distDir, 'edge-daemon/gateway-fs.js') }));
    },
  };
}

/**
 * The gateway logs through edge-daemon/gateway-log.js, which writes pino's lines without pino
 * (issue 11, edge-daemon/README.md, Ninth pass): every import of common/log.js in the bundle is
 * resolved to it. The compiled modules (tests, `berth edge-daemon` without a fresh bundle) keep pino.
 */
function gatewayLogger(distDir: string): Plugin {
  const shared = join(distDir, 'common/log.js');
  return {
    name: 'gateway-logger',
    setup(b) {
      b.onResolve({ filter: /[\\/]log\.js$/ }, (args) =>
        resolve(args.resolveDir, args.path) === shared ? { path: join(distDir, 'edge-daemon/gateway-log.js') } : undefined,
      );
    },
  };
}

/**
 * Bundles `distDir`'s compiled daemon into `outDir` (default: the same dist/): the daemon as one
 * CommonJS script and the gateway's entry (bin/gateway-entry.ts) as another, with the inputs list of
 * both; returns the number of files bundled.
 */
export async function bundleGateway(distDir: string, outDir = distDir): Promise<number> {
  const dir = join(outDir, GATEWAY_DIR);
  rmSync(dir, { recursive: true, force: true }); // nothing of an older build left behind
  const common = {
    absWorkingDir: outDir,
    bundle: true,
    platform: 'node',
    // CommonJS: a gateway's Node never starts its ES module loader (bin/gateway-entry.ts). esbuild
    // cannot split CommonJS into chunks, so what the daemon imports on demand (the download channel,
    // the handover registry, TLS trust) is in the one script too, compiled only when first run.
    format: 'cjs',
    target: 'node20',
    charset: 'ascii', // bin/gateway-bundle.ts's loadScript reads the script in pieces, as ASCII
    // zstd-napi is a native binding: required from node_modules, as Node's built-ins are.
    external: ['zstd-napi', 'zstd-napi/*'],
    // Whitespace and syntax only: identifiers keep their names, so error types and stack traces in
    // the logs read as in the sources. (esbuild's keepNames, the other way to keep them, wraps every
    // function in a defineProperty and cost 1.5 MiB resident; renamed identifiers gained < 0.5.)
    minifyWhitespace: true,
    minifySyntax: true,
    sourcemap: 'external',
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
  } satisfies BuildOptions;
  const daemon = await build({
    ...common,
    entryPoints: [join(distDir, 'edge-daemon/index.js')],
    outfile: join(outDir, GATEWAY_BUNDLE),
    plugins: [englishZodOnly, gatewayFs(distDir), requiredOnDemand, gatewayLogger(distDir)],
  });
  const entry = await build({ ...common, entryPoints: [join(distDir, 'bin/gateway-entry.js')], outfile: join(outDir, GATEWAY_ENTRY) });
  // esbuild names inputs relative to absWorkingDir, i.e. to the bundle's dist/ (packages as ../node_modules/…).
  const inputs = [...new Set([...Object.keys(daemon.metafile.inputs), ...Object.keys(entry.metafile.inputs)])].filter((p) => !p.includes(':'));
  writeFileSync(join(outDir, GATEWAY_INPUTS), JSON.stringify({ bundle: GATEWAY_BUNDLE, entry: GATEWAY_ENTRY, inputs }) + '\n');
  return inputs.length;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const distDir = process.argv[2] ?? fileURLToPath(new URL('..', import.meta.url));
  bundleGateway(distDir).then(
    (n) => console.log(`gateway bundle: ${join(distDir, GATEWAY_BUNDLE)} (${n} files), entry ${join(distDir, GATEWAY_ENTRY)}`),
    (err: unknown) => {
      console.error(`bundle-gateway: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    },
  );
}
