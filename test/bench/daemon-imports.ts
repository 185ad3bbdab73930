import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * What each library or module costs the edge daemon's memory when imported alone (issue 11):
 * every argument is imported in a fresh `node` with the V8 flags `berth edge-daemon` sets, and the
 * process's RSS (anonymous + file-backed) and V8 heap are printed after it settles, next to a bare
 * process with the same flags. Not a `npm run bench` entry: a tool for edge-daemon/README.md's
 * Footprint figures.
 *
 *   node dist/test/bench/daemon-imports.js zod pino jose ./edge-daemon/daemon.js ./protocol/device.js
 *
 * A name starting with `./` is a compiled module under dist/; anything else an npm package.
 */

const CHILD = `
import { setFlagsFromString } from 'node:v8';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
for (const f of ['--semi-space-growth-factor=1', '--max-opt=0', '--regexp-interpret-all', '--optimize-for-size']) setFlagsFromString(f);
const [dist, ...what] = process.argv.slice(1);
const req = createRequire(dist + 'package.json');
for (const w of what) if (w.startsWith('./')) await import(dist + w.slice(2)); else await import(req.resolve(w));
await new Promise((r) => setTimeout(r, 2000));
const s = readFileSync('/proc/self/status', 'utf8');
const kib = (k) => Number(s.match(new RegExp(k + ':\\\\s+(\\\\d+)'))[1]);
const m = process.memoryUsage();
console.log(JSON.stringify({ rss: kib('VmRSS'), anon: kib('RssAnon'), file: kib('RssFile'), heapUsed: m.heapUsed >> 10 }));
`;

function measure(dist: string, modules: string[]): { rss: number; anon: number; file: number; heapUsed: number } {
  const out = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD, dist, ...modules], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`importing ${modules.join(' + ') || 'nothing'} failed: ${out.stderr.trim().split('\n').slice(-3).join(' ')}`);
  return JSON.parse(out.stdout) as { rss: number; anon: number; file: number; heapUsed: number };
}

const dist = fileURLToPath(new URL('../../', import.meta.url));
const mib = (k: number): string => (k / 1024).toFixed(1).padStart(6);
const bare = measure(dist, []);
console.log(`${'imported'.padEnd(40)}   RSS  anon  file  heap (MiB; + over bare)`);
console.log(`${'(nothing)'.padEnd(40)}${mib(bare.rss)}${mib(bare.anon)}${mib(bare.file)}${mib(bare.heapUsed)}`);
for (const m of process.argv.slice(2)) {
  const r = measure(dist, [m]);
  console.log(`${m.padEnd(40)}${mib(r.rss)}${mib(r.anon)}${mib(r.file)}${mib(r.heapUsed)}   +${((r.rss - bare.rss) / 1024).toFixed(1)}`);
}
