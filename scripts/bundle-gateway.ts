/**
 * `npm run build`'s second step: dist/edge-daemon/gateway/, the edge daemon as `berth edge-daemon`
 * runs it (bin/gateway-bundle.ts says why and when). Everything the daemon loads from dist/ and its
 * pure-JavaScript packages goes into minified ES modules: the entry, and a chunk per part it
 * imports on demand (esbuild's code splitting), so a part it never uses is never loaded. Its logger
 * is edge-daemon/gateway-log.js instead of pino's; zstd-napi (a native binding) stays a package.
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
import { build, type Plugin } from 'esbuild';
import { GATEWAY_BUNDLE, GATEWAY_DIR, GATEWAY_INPUTS } from '../bin/gateway-bundle.js';

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
 * Node's built-ins and the packages left out of the bundle (pino, zstd-napi), loaded with `require`
 * instead of `import`. An `import` of a built-in makes Node build its ES module facade, which reads
 * every export, lazy getters included (`crypto.webcrypto` loads WebCrypto and webidl); an `import`
 * of a CommonJS package loads Node's CommonJS export lexer and keeps a facade of its exports. The
 * same modules through `require`, in a fresh process: ≈ 0.8 MiB less resident (issue 11,
 * edge-daemon/README.md, Seventh pass). Each chunk gets `__gatewayRequire` from its banner;
 * esbuild turns the named imports of these CommonJS stand-ins into property reads.
 */
const GATEWAY_REQUIRE = '__gatewayRequire';
const requiredNotImported: Plugin = {
  name: 'required-not-imported',
  setup(b) {
    b.onResolve({ filter: /^(node:|pino$|zstd-napi\/)/ }, (args) => ({ path: args.path, namespace: 'gateway-require' }));
    b.onLoad({ filter: /.*/, namespace: 'gateway-require' }, (args) => ({
      contents: `module.exports = ${GATEWAY_REQUIRE}(${JSON.stringify(args.path)});\n`,
      loader: 'js',
    }));
  },
};

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
 * Bundles `distDir`'s compiled daemon into `outDir` (default: the same dist/), with its inputs list;
 * returns the number of files bundled.
 */
export async function bundleGateway(distDir: string, outDir = distDir): Promise<number> {
  const dir = join(outDir, GATEWAY_DIR);
  rmSync(dir, { recursive: true, force: true }); // no chunk of an older build left behind
  const result = await build({
    absWorkingDir: outDir,
    entryPoints: { index: join(distDir, 'edge-daemon/index.js') },
    outdir: dir,
    chunkNames: 'chunk-[hash]',
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // Whitespace and syntax only: identifiers keep their names, so error types and stack traces in
    // the logs read as in the sources. (esbuild's keepNames, the other way to keep them, wraps every
    // function in a defineProperty and cost 1.5 MiB resident; renamed identifiers gained < 0.5.)
    minifyWhitespace: true,
    minifySyntax: true,
    sourcemap: 'external',
    legalComments: 'none',
    banner: { js: `import{createRequire as __gatewayCreateRequire}from"node:module";const ${GATEWAY_REQUIRE}=__gatewayCreateRequire(import.meta.url);` },
    plugins: [englishZodOnly, requiredNotImported, gatewayLogger(distDir)],
    metafile: true,
    logLevel: 'warning',
  });
  // esbuild names inputs relative to absWorkingDir, i.e. to the bundle's dist/ (packages as ../node_modules/…).
  const inputs = Object.keys(result.metafile.inputs).filter((p) => !p.includes(':'));
  writeFileSync(join(outDir, GATEWAY_INPUTS), JSON.stringify({ bundle: GATEWAY_BUNDLE, inputs }) + '\n');
  return inputs.length;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const distDir = process.argv[2] ?? fileURLToPath(new URL('..', import.meta.url));
  bundleGateway(distDir).then(
    (n) => console.log(`gateway bundle: ${join(distDir, GATEWAY_BUNDLE)} (${n} files)`),
    (err: unknown) => {
      console.error(`bundle-gateway: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    },
  );
}
