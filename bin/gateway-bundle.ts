import { isAscii } from 'node:buffer';
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { compileFunction } from 'node:vm';

/**
 * The gateway bundle (issue 11): `npm run build` writes the edge daemon and everything it loads as
 * one minified CommonJS script, `edge-daemon/gateway/daemon.cjs` under dist/
 * (scripts/bundle-gateway.ts), and its entry `bin/edge-daemon.cjs` (bin/gateway-entry.ts), which a
 * gateway runs. One script instead of ~170 modules: no module records, short ASCII sources instead
 * of many two-byte ones (comments with → and —, zod's files), only the English zod locale, pino's
 * lines without pino, and no ES module loader at all (edge-daemon/README.md, Fourth and Ninth passes).
 * `berth edge-daemon` loads the same script.
 *
 * A bundle older than any file it was built from is stale (`npx tsc -p .` alone, after a
 * `npm run build`): the daemon then runs the compiled modules, never old code, and says so.
 */

/** Next to the bundle: the files it was built from, relative to dist/, to tell a stale bundle. */
export const GATEWAY_DIR = 'edge-daemon/gateway/';
export const GATEWAY_BUNDLE = `${GATEWAY_DIR}daemon.cjs`;
export const GATEWAY_INPUTS = `${GATEWAY_DIR}inputs.json`;
/** The gateway's entry, relative to dist/: `node dist/bin/edge-daemon.cjs [flags of berth edge-daemon]`. */
export const GATEWAY_ENTRY = 'bin/edge-daemon.cjs';

export type BundleState = { use: 'bundle' } | { use: 'modules'; why: string };
export type Main = (argv: string[]) => Promise<number | void>;

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

/**
 * The gateway's heap, set before the daemon's code loads (issue 11: at most 50 MiB idle, 80 MiB
 * while updating). V8 doubles its young generation up to 2 × 16 MiB whenever much of it survives a
 * scavenge (start-up, a download), and never gives it back: some 30 MiB of RSS for garbage that
 * lived a moment. A growth factor of 1 keeps it at its initial 2 × 1 MiB, for a few more
 * scavenges. Unlike --max-semi-space-size, this flag is read at every scavenge, so it can be set
 * here, without a wrapper process or NODE_OPTIONS.
 *
 * The daemon's hot paths are native (hashing, zstd, zlib, sockets, JSON), so its JavaScript runs
 * interpreted: `--max-opt=0` never tiers up to Sparkplug or TurboFan, whose compiled code and the
 * compiler's own pages of the node binary cost several MiB resident; regular expressions are
 * interpreted too, and V8 favours size where it has the choice. Measured side by side (quick
 * daemon-footprint bench, `--max-opt=0` alone, edge-daemon/README.md): idle 71.6 → 68 MiB, update
 * peaks 79.3 → 75.0 (full layer) and 88.0 → 76.5 MiB (delta), for 0.4–0.6 s more daemon CPU per
 * update of a 20 MB layer. They are read when code is compiled, so setting them before the
 * daemon's code loads covers all of it (without them the daemon idles near 69 MiB).
 */
const GATEWAY_V8_FLAGS = ['--semi-space-growth-factor=1', '--max-opt=0', '--regexp-interpret-all', '--optimize-for-size'];

export function gatewayHeap(): void {
  for (const flag of GATEWAY_V8_FLAGS) setFlagsFromString(flag);
}

/**
 * The daemon's `main`: the bundle when fresh, else the compiled modules with a line on stderr
 * saying why. `require` loads what the bundle leaves out (Node's built-ins, zstd-napi).
 */
export async function loadGateway(distDir: URL, require: NodeJS.Require): Promise<{ main: Main }> {
  const state = gatewayBundleState(distDir);
  if (state.use === 'bundle') return loadScript(fileURLToPath(new URL(GATEWAY_BUNDLE, distDir)), require) as { main: Main };
  console.error(`berth edge-daemon: running the compiled modules: ${state.why}`);
  return (await import(pathToFileURL(fileURLToPath(new URL('edge-daemon/index.js', distDir))).href)) as { main: Main };
}

const READ_PIECE = 64 * 1024;

/**
 * Runs a CommonJS script and returns its exports, as `require` would, but read in 64 KiB pieces.
 * `require` reads a file into one buffer that grows to twice the file's size (1 MiB for the 540 KB
 * bundle), mmapped and then freed; glibc then raises its mmap threshold to that size and its trim
 * threshold to twice it, so up to 2 MiB of freed memory stays in the process for good: 1.5–2 MiB
 * more at idle than the same daemon as ES modules (edge-daemon/README.md, Ninth pass). Pieces below
 * glibc's 128 KiB mmap threshold never move it. The bundle is ASCII (esbuild escapes the rest), so
 * each piece decodes on its own; a piece that is not is refused rather than misread.
 */
export function loadScript(file: string, require: NodeJS.Require): unknown {
  const fd = openSync(file, 'r');
  let source = '';
  try {
    const piece = Buffer.allocUnsafe(READ_PIECE);
    for (let n: number, at = 0; (n = readSync(fd, piece, 0, READ_PIECE, null)) > 0; at += n) {
      if (!isAscii(piece.subarray(0, n))) throw new Error(`${file}: not ASCII within bytes ${at}-${at + n} (esbuild writes the bundle ASCII-only)`);
      source += piece.toString('latin1', 0, n);
    }
  } finally {
    closeSync(fd);
  }
  const module = { exports: {} as unknown };
  const run = compileFunction(source, ['exports', 'require', 'module', '__filename', '__dirname'], { filename: file });
  run.call(module.exports, module.exports, require, module, file, dirname(file));
  return module.exports;
}
